"""The optional OpenAI vector store follows the articles: what the fake Files API received."""

from __future__ import annotations

import pytest
from werkzeug import Response

from knowledge.models import Article
from knowledge.services import delete_article, index_article, set_articles_active

from .conftest import VECTOR_STORE_ID

pytestmark = pytest.mark.django_db


def test_a_saved_article_becomes_a_file_of_the_vector_store(write_article, fake_vector_store):
    article = write_article(title="Kettles", slug="kettles", body="## Boiling\nTwo minutes.")

    assert fake_vector_store.uploads == [("file-1", "kettles.md", "# Kettles\n\n## Boiling\nTwo minutes.\n")]
    assert fake_vector_store.attached == [
        (VECTOR_STORE_ID, "file-1", {"article_id": article.pk, "slug": "kettles", "language": "en"})
    ]
    assert Article.objects.get(pk=article.pk).openai_file_id == "file-1"


def test_an_edit_replaces_the_file_and_deletes_the_old_one(write_article, fake_vector_store):
    article = write_article(title="Kettles", slug="kettles", body="## Boiling\nTwo minutes.")
    Article.objects.filter(pk=article.pk).update(body="## Boiling\nNinety seconds.")

    index_article(article_id=article.pk)

    assert [upload[2] for upload in fake_vector_store.uploads][-1] == "# Kettles\n\n## Boiling\nNinety seconds.\n"
    assert fake_vector_store.detached == [(VECTOR_STORE_ID, "file-1")]
    assert fake_vector_store.deleted == ["file-1"]
    assert Article.objects.get(pk=article.pk).openai_file_id == "file-2"


def test_deactivated_and_deleted_articles_leave_the_vector_store(write_article, fake_vector_store):
    kettles = write_article(title="Kettles", slug="kettles", body="## Boiling\nTwo minutes.")
    teapots = write_article(title="Teapots", slug="teapots", body="## Glass\nDishwasher safe.")

    set_articles_active(article_ids=[kettles.pk], is_active=False)
    delete_article(article_id=teapots.pk)

    assert fake_vector_store.detached == [(VECTOR_STORE_ID, "file-1"), (VECTOR_STORE_ID, "file-2")]
    assert fake_vector_store.deleted == ["file-1", "file-2"]
    assert Article.objects.get(pk=kettles.pk).openai_file_id == ""


def test_a_refused_upload_is_shown_on_the_article(write_article, fake_vector_store, httpserver):
    httpserver.clear_all_handlers()
    httpserver.expect_request("/v1/files", method="POST").respond_with_response(
        Response(
            '{"error": {"message": "bad", "type": "invalid_request_error", "code": "invalid_file"}}',
            status=400,
            content_type="application/json",
        )
    )

    article = write_article(title="Kettles", slug="kettles", body="## Boiling\nTwo minutes.")

    refreshed = Article.objects.get(pk=article.pk)
    assert (refreshed.openai_file_id, refreshed.vector_store_error) == ("", "HTTP 400 invalid_file")


def test_without_a_vector_store_nothing_is_sent(write_article, httpserver, settings):
    settings.KNOWLEDGE_VECTOR_STORE_ID = ""
    write_article(title="Kettles", slug="kettles", body="## Boiling\nTwo minutes.")
    assert httpserver.log == []
