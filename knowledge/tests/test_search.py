"""search_knowledge on the demo shop, and how the index follows every change to an article."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from knowledge import selectors
from knowledge.evaluation import load_eval_set
from knowledge.models import Article, Chunk, TermCount
from knowledge.selectors import get_best_passage, has_knowledge, search_knowledge
from knowledge.services import delete_article, index_article, reindex_all, set_articles_active

pytestmark = pytest.mark.django_db
EVAL_SET = Path(settings.BASE_DIR) / "knowledge" / "eval" / "demo.yaml"


def test_the_best_passage_answers_the_question_in_either_language(demo_knowledge):
    english = search_knowledge("How long does shipping to Italy take?")[0]
    assert (english.title, english.heading) == ("Shipping and delivery", "Delivery times in Italy")
    italian = search_knowledge("Quanto costa la spedizione?")[0]
    assert (italian.title, italian.heading) == ("Spedizioni e consegne", "Costi di spedizione")
    assert 0 < italian.relevance <= 1


def test_a_question_the_knowledge_base_does_not_answer_gets_no_passage(demo_knowledge):
    assert search_knowledge("Who won the football match last night?") == []
    assert search_knowledge("Hello!") == []


def test_a_word_cut_differently_by_stemming_still_matches_in_part(write_article):
    write_article(title="Couriers", body="## Times\nDeliveries take two working days.")
    # "delivered" stems to "deliv", the article's "deliveries" to "deliveri": a partial match.
    [hit] = search_knowledge("When is it delivered?")
    assert hit.heading == "Times" and 0 < hit.relevance < 1


def test_language_and_tags_narrow_the_search(demo_knowledge):
    assert {hit.language for hit in search_knowledge("PayPal", language="it")} == {"it"}
    tagged = search_knowledge("free shipping returns", tags=["returns"])
    assert tagged and {hit.title for hit in tagged} == {"Returns, exchanges and refunds"}


def test_an_edited_article_is_searched_as_it_is_now(write_article):
    article = write_article(title="Opening hours", body="## Weekdays\nWe open at 9 on weekdays.")
    assert "at 9" in search_knowledge("When do you open on weekdays?")[0].text

    article.body = "## Weekdays\nWe open at 8 on weekdays."
    article.save()
    index_article(article_id=article.pk)

    hits = search_knowledge("When do you open on weekdays?")
    assert [hit.text for hit in hits] == ["We open at 8 on weekdays."]


def test_deleted_and_deactivated_articles_are_not_searched_and_leave_no_counts(write_article):
    kept = write_article(title="Kettles", body="## Boiling\nOur kettles boil water in two minutes.")
    gone = write_article(title="Teapots", body="## Glass teapots\nGlass teapots are dishwasher safe.")

    delete_article(article_id=gone.pk)
    assert search_knowledge("Are glass teapots dishwasher safe?") == []
    assert not Article.objects.filter(pk=gone.pk).exists()

    set_articles_active(article_ids=[kept.pk], is_active=False)
    assert search_knowledge("How fast do kettles boil water?") == []
    assert not has_knowledge()
    assert set(TermCount.objects.values_list("article_count", flat=True)) == {0}

    set_articles_active(article_ids=[kept.pk], is_active=True)
    assert search_knowledge("How fast do kettles boil water?")[0].title == "Kettles"


def test_the_term_counts_kept_by_each_change_equal_a_recount(demo_knowledge, write_article):
    article = write_article(title="Kettles", body="## Boiling\nOur kettles boil water in two minutes.")
    article.body = "## Boiling\nOur kettles boil water in ninety seconds.\n\n## Cleaning\nDescale monthly."
    article.language = "it"
    article.save()
    index_article(article_id=article.pk)
    delete_article(article_id=Article.objects.get(slug="returns-en").pk)
    kept = {(row.language, row.term): row.article_count for row in TermCount.objects.filter(article_count__gt=0)}

    reindex_all()

    recounted = {(row.language, row.term): row.article_count for row in TermCount.objects.filter(article_count__gt=0)}
    assert kept == recounted
    assert recounted[("en", "")] == 4 and recounted[("it", "")] == 6


def test_the_offline_quote_of_a_long_passage_is_its_paragraph_about_the_question(write_article):
    filler = "We pack every order with care in recycled paper. " * 8
    write_article(title="Packing", body=f"## Packing\n{filler}\n\nGift boxes cost three euros each.\n\n{filler}")
    hit = search_knowledge("How much does a gift box cost?")[0]
    assert get_best_passage(query="How much does a gift box cost?", hit=hit) == "Gift boxes cost three euros each."


def test_chunks_of_an_article_are_rebuilt_with_new_ids_on_each_index(write_article):
    article = write_article(title="Kettles", body="## Boiling\nFast.")
    first = list(Chunk.objects.values_list("pk", flat=True))
    index_article(article_id=article.pk)
    assert set(first).isdisjoint(Chunk.objects.values_list("pk", flat=True))


def test_stopping_early_finds_exactly_what_reading_every_passage_finds(demo_knowledge, settings):
    # With no threshold and room for every passage the search reads each term's passages; with
    # the defaults it stops as soon as no unread passage can make the cut (selectors, MaxScore).
    for question in load_eval_set(EVAL_SET):
        everything = search_knowledge(question.text, limit=1000, min_relevance=0.0)
        expected = [hit for hit in everything if hit.relevance >= settings.KNOWLEDGE_MIN_RELEVANCE][:3]
        assert search_knowledge(question.text, limit=3) == expected, question.text


def test_a_term_too_common_to_list_is_left_to_the_databases_ranking(demo_knowledge, monkeypatch):
    monkeypatch.setattr(selectors, "ENUMERATE_LIMIT", 1)
    hit = search_knowledge("How long does shipping to Italy take?")[0]
    assert (hit.title, hit.heading) == ("Shipping and delivery", "Delivery times in Italy")


def test_a_term_more_articles_use_than_the_limit_is_ranked_without_being_listed(write_article, monkeypatch):
    for number in range(3):
        write_article(title=f"Kettle {number}", body=f"## Boiling\nKettle {number} boils water quickly.")
    write_article(title="Descaling", body="## Limescale\nDescale a kettle with citric acid.")
    listed = []
    listing = selectors._rows_holding
    monkeypatch.setattr(
        selectors,
        "_rows_holding",
        lambda language, term, *args, **kw: listed.append(term) or listing(language, term, *args, **kw),
    )
    monkeypatch.setattr(selectors, "ENUMERATE_LIMIT", 2)  # "kettl" is in 4 articles, "citric" in 1

    hits = search_knowledge("Citric acid for my kettle", language="en")

    assert hits[0].title == "Descaling"
    assert "kettl" not in listed and {"citric", "acid"} <= set(listed)


def test_the_database_ranks_only_the_first_pool_of_passages_holding_common_terms(write_article, monkeypatch):
    for number in range(6):
        write_article(title=f"Teapot {number}", body=f"## Glass\nTeapot {number} is glass.", language="en")
    monkeypatch.setattr(selectors, "ENUMERATE_LIMIT", 0)  # every term is left to the database
    assert len(search_knowledge("Teapots?", language="en", limit=10)) == 6

    monkeypatch.setattr(selectors, "RANK_POOL", 4)
    hits = search_knowledge("Teapots?", language="en", limit=10)
    assert len(hits) == 4 and all(hit.relevance == 1.0 for hit in hits)


@pytest.mark.postgres
def test_the_postgresql_search_indexes_keep_no_pending_list(db):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's GIN indexes")
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reloptions FROM pg_class WHERE relname LIKE 'knowledge_chunk_search_%%_idx'")
        options = dict(cursor.fetchall())
    assert len(options) == 7 and all(value == ["fastupdate=off"] for value in options.values())
