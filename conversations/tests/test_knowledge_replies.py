"""Replies from the knowledge base, through the real webhook → reply → send path, with the fake
OpenAI at the HTTP boundary (the demo shop's articles, knowledge/demo/)."""

from __future__ import annotations

import json

import pytest

from conversations.models import Conversation, Message
from conversations.services.handoff import HUMAN_COMING_REPLY
from conversations.services.knowledge import knowledge_rules
from conversations.tests.fakes import GRAPH_MESSAGES
from conversations.tests.helpers import meta_text, openai_response, post_meta
from knowledge.models import Article, Chunk
from knowledge.selectors import search_knowledge
from knowledge.services import load_demo_knowledge

pytestmark = pytest.mark.django_db

NO_PASSAGE = {"role": "developer", "content": "No knowledge base passage matches the customer's new message."}


@pytest.fixture
def shop(db):
    return load_demo_knowledge()


def passage(slug: str, heading: str) -> Chunk:
    return Chunk.objects.select_related("article").get(article__slug=slug, heading=heading)


def bot_reply() -> Message:
    return Message.objects.get(author=Message.Author.BOT)


def test_the_model_input_holds_the_passage_that_answers_the_question(client, graph_ok, fake_openai, shop):
    post_meta(client, meta_text("How long does shipping to Italy take?", "wamid.k1"))

    [request] = fake_openai.requests
    italy = passage("shipping-en", "Delivery times in Italy")
    given = request["input"][-1]
    assert given["role"] == "developer"
    assert given["content"].startswith("Knowledge base passages for this reply")
    assert f"[K{italy.pk}] Shipping and delivery > Delivery times in Italy\n{italy.text}" in given["content"]
    assert request["input"][-2] == {"role": "user", "content": "How long does shipping to Italy take?"}
    assert knowledge_rules() in request["instructions"]
    assert [tool["name"] for tool in request["tools"]] == ["request_human", "save_customer_details", "search_knowledge"]


def test_an_off_topic_question_gets_no_passage(client, graph_ok, fake_openai, shop):
    post_meta(client, meta_text("Who won the football match last night?", "wamid.k2"))

    [request] = fake_openai.requests
    assert request["input"][-1] == NO_PASSAGE
    assert "[K" not in json.dumps(request["input"])


def test_a_search_knowledge_call_is_run_and_its_result_sent_back_in_the_same_turn(client, graph_ok, fake_openai, shop):
    label = passage("returns-en", "Return shipping costs")
    fake_openai.call_tool("search_knowledge", {"query": "cost of the return label"}, call_id="call_1")
    fake_openai.answer(f"Returns from Italy are free: we pay the label. [K{label.pk}]", input_tokens=50)

    post_meta(client, meta_text("And if I change my mind?", "wamid.k3"))

    first, second = fake_openai.requests
    assert second["instructions"] == first["instructions"]
    call, output = second["input"][-2:]
    assert call == {
        "type": "function_call",
        "call_id": "call_1",
        "name": "search_knowledge",
        "arguments": '{"query": "cost of the return label"}',
    }
    assert (output["type"], output["call_id"]) == ("function_call_output", "call_1")
    assert f"[K{label.pk}] Returns, exchanges and refunds > Return shipping costs\n{label.text}" in output["output"]
    reply = bot_reply()
    assert reply.text == "Returns from Italy are free: we pay the label."
    assert reply.knowledge_sources == [
        {
            "chunk_id": label.pk,
            "article_id": label.article_id,
            "title": "Returns, exchanges and refunds",
            "heading": "Return shipping costs",
            "url": "https://tazzablu.example/help/returns",
            "cited": True,
        }
    ]
    assert (reply.input_tokens, reply.output_tokens) == (42 + 50, 7 + 7)  # both rounds
    [sent] = graph_ok.sent(GRAPH_MESSAGES)
    assert sent["text"]["body"] == "Returns from Italy are free: we pay the label."  # no ids, no links


def test_the_model_searches_at_most_the_round_cap_then_must_answer(client, graph_ok, fake_openai, shop, settings):
    settings.OPENAI_MAX_TOOL_ROUNDS = 2
    fake_openai.call_tool("search_knowledge", {"query": "teapots"}, call_id="call_1")
    fake_openai.call_tool("search_knowledge", {"query": "teapots in blue"}, call_id="call_2")
    fake_openai.answer("I don't know, but a colleague can check the blue teapot for you.")

    post_meta(client, meta_text("Do you have the teapot in blue?", "wamid.k4"))

    assert len(fake_openai.requests) == 3
    assert "tool_choice" not in fake_openai.requests[1]
    assert fake_openai.requests[2]["tool_choice"] == "none"
    reply = bot_reply()
    assert reply.text.startswith("I don't know")
    # Nothing cited: the passages it was given are recorded as such, for staff to judge.
    assert reply.knowledge_sources and not any(source["cited"] for source in reply.knowledge_sources)


def test_a_request_for_a_person_still_flags_the_conversation(client, graph_ok, fake_openai, shop):
    fake_openai.call_tool("request_human")

    post_meta(client, meta_text("Can I speak with someone from your team?", "wamid.k5"))

    assert Conversation.objects.get().needs_human
    assert bot_reply().text == HUMAN_COMING_REPLY


def test_source_links_reach_the_customer_only_when_the_setting_allows(client, graph_ok, fake_openai, shop, settings):
    settings.KNOWLEDGE_SOURCE_LINKS = True
    italy = passage("shipping-en", "Delivery times in Italy")
    fake_openai.answer(f"Deliveries within Italy take 1\u20132 working days. [K{italy.pk}]")

    post_meta(client, meta_text("How long does shipping to Italy take?", "wamid.k6"))

    [sent] = graph_ok.sent(GRAPH_MESSAGES)
    assert sent["text"]["body"] == (
        "Deliveries within Italy take 1\u20132 working days.\n\nhttps://tazzablu.example/help/shipping"
    )


def test_in_the_conversations_api_mode_only_the_function_output_is_sent_back(
    client, graph_ok, fake_openai, shop, settings
):
    settings.OPENAI_USE_CONVERSATIONS = True
    fake_openai.call_tool("search_knowledge", {"query": "opening hours"}, call_id="call_9")
    fake_openai.answer("We open at 10.")

    post_meta(client, meta_text("When do you open?", "wamid.k7"))

    first, second = fake_openai.requests
    assert first["conversation"] == second["conversation"] == "conv_1"
    [output] = second["input"]
    assert (output["type"], output["call_id"]) == ("function_call_output", "call_9")


def test_with_a_vector_store_the_model_gets_file_search_and_its_citations_become_sources(
    client, graph_ok, fake_openai, shop, settings
):
    settings.KNOWLEDGE_VECTOR_STORE_ID = "vs_shop"
    Article.objects.filter(slug="payment-en").update(openai_file_id="file-pay")
    answer = openai_response("We accept PayPal.")
    answer["output"][0]["content"][0]["annotations"] = [
        {"type": "file_citation", "file_id": "file-pay", "filename": "payment-en.md", "index": 16}
    ]
    fake_openai.queue.append((200, answer, {}))

    post_meta(client, meta_text("Can I pay with PayPal?", "wamid.k8"))

    [request] = fake_openai.requests
    assert {"type": "file_search", "vector_store_ids": ["vs_shop"]} in request["tools"]
    file_source = bot_reply().knowledge_sources[-1]
    assert file_source == {
        "chunk_id": None,
        "article_id": Article.objects.get(slug="payment-en").pk,
        "title": "Payment methods",
        "heading": "",
        "url": "https://tazzablu.example/help/payment",
        "cited": True,
    }


def test_with_an_empty_knowledge_base_the_request_is_as_before(client, graph_ok, fake_openai):
    post_meta(client, meta_text("How long does shipping to Italy take?", "wamid.k9"))

    [request] = fake_openai.requests
    assert request["input"] == [{"role": "user", "content": "How long does shipping to Italy take?"}]
    assert "knowledge base" not in request["instructions"]
    assert [tool["name"] for tool in request["tools"]] == ["request_human", "save_customer_details"]


# --- The offline responder (no OPENAI_API_KEY) answers from the knowledge base.


def test_offline_the_best_passage_is_the_answer(client, graph_ok, fake_openai, shop, settings):
    settings.OPENAI_API_KEY = ""

    post_meta(client, meta_text("How long does shipping to Italy take?", "wamid.o1"))

    [sent] = graph_ok.sent(GRAPH_MESSAGES)
    assert sent["text"]["body"].startswith("[offline responder] *Delivery times in Italy*\nDeliveries within Italy")
    italy = passage("shipping-en", "Delivery times in Italy")
    assert [source["chunk_id"] for source in bot_reply().knowledge_sources] == [italy.pk]
    assert fake_openai.requests == []


def test_offline_an_unrelated_question_gets_i_dont_know_in_its_language(client, graph_ok, fake_openai, shop, settings):
    settings.OPENAI_API_KEY = ""

    post_meta(client, meta_text("Who won the football match last night?", "wamid.o2"))
    post_meta(client, meta_text("Chi ha vinto la partita di calcio ieri sera?", "wamid.o3"))

    english, italian = (sent["text"]["body"] for sent in graph_ok.sent(GRAPH_MESSAGES))
    assert (
        english == "[offline responder] I don't know the answer to that. Write “agent” and a colleague will help you."
    )
    assert italian == "[offline responder] Non conosco la risposta. Scrivi “operatore” e un collega ti aiuterà."


def test_an_article_edit_in_the_admin_changes_the_next_answer(
    client, admin_client, graph_ok, fake_openai, shop, settings
):
    settings.OPENAI_API_KEY = ""
    article = Article.objects.get(slug="shipping-en")
    post_meta(client, meta_text("How long does shipping to Italy take?", "wamid.e1"))

    form = {
        "title": article.title,
        "slug": article.slug,
        "language": article.language,
        "tags": list(article.tags.values_list("pk", flat=True)),
        "is_active": "on",
        "url": article.url,
        "body": article.body.replace(
            "Deliveries within Italy take 1\u20132 working days", "Deliveries within Italy take 2\u20133 working days"
        ),
    }
    response = admin_client.post(f"/admin/knowledge/article/{article.pk}/change/", form)
    assert response.status_code == 302
    post_meta(client, meta_text("How long does shipping to Italy take?", "wamid.e2"))

    before, after = (sent["text"]["body"] for sent in graph_ok.sent(GRAPH_MESSAGES))
    assert "take 1\u20132 working days" in before
    assert "take 2\u20133 working days" in after
    assert Article.objects.get(pk=article.pk).updated_by.username == "admin"


def test_an_article_deleted_in_the_admin_is_no_longer_retrieved(
    client, admin_client, graph_ok, fake_openai, shop, settings
):
    settings.OPENAI_API_KEY = ""
    article = Article.objects.get(slug="shipping-en")

    response = admin_client.post(f"/admin/knowledge/article/{article.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Chunk.objects.filter(article_id=article.pk).exists()
    hits = search_knowledge("How long does shipping to Italy take?", limit=20, min_relevance=0)
    assert article.pk not in {hit.article_id for hit in hits}
    post_meta(client, meta_text("How long does shipping to Italy take?", "wamid.d1"))
    assert article.pk not in {source["article_id"] for source in bot_reply().knowledge_sources}
