import pytest

from conversations.models import Message
from conversations.services.replies import APOLOGY
from conversations.tasks import process_inbound_message
from conversations.tests.fakes import GRAPH_MESSAGES

from .helpers import meta_body, post_meta

pytestmark = pytest.mark.django_db


def test_openai_429_then_success_gives_one_reply_within_the_attempt_cap(client, graph_ok, fake_openai, settings):
    settings.OPENAI_MAX_ATTEMPTS = 3
    fake_openai.fail(429, "rate_limit_exceeded", headers={"retry-after": "0"})
    fake_openai.answer("Back on track.")

    post_meta(client, meta_body("text"))

    assert len(fake_openai.requests) == 2
    [sent] = graph_ok.sent(GRAPH_MESSAGES)
    assert sent["text"]["body"] == "Back on track."


def test_the_attempt_cap_counts_every_model_call(client, graph_ok, fake_openai, settings):
    settings.OPENAI_MAX_ATTEMPTS = 3
    fake_openai.fail(500, "server_error", times=10)

    post_meta(client, meta_body("text"))

    assert len(fake_openai.requests) == 3
    assert graph_ok.sent(GRAPH_MESSAGES)[0]["text"]["body"] == APOLOGY


def test_a_spend_limit_429_is_not_retried_and_the_customer_gets_an_apology(client, graph_ok, fake_openai):
    fake_openai.fail(429, "insufficient_quota")

    post_meta(client, meta_body("text"))

    assert len(fake_openai.requests) == 1
    [sent] = graph_ok.sent(GRAPH_MESSAGES)
    assert sent["text"]["body"] == APOLOGY


def test_openai_down_gives_an_apology_not_silence(client, graph_ok, settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
    settings.OPENAI_MAX_ATTEMPTS = 2

    post_meta(client, meta_body("text"))

    [sent] = graph_ok.sent(GRAPH_MESSAGES)
    assert sent["text"]["body"] == APOLOGY
    assert Message.objects.get(author=Message.Author.CUSTOMER).status == Message.Status.HANDLED


def test_the_reply_task_run_twice_sends_once(client, graph_ok, fake_openai):
    post_meta(client, meta_body("text"))
    inbound = Message.objects.get(author=Message.Author.CUSTOMER)

    process_inbound_message.delay(inbound.pk)
    process_inbound_message.delay(inbound.pk)

    assert len(fake_openai.requests) == 1
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1
    assert Message.objects.filter(author=Message.Author.BOT).count() == 1


def test_a_reply_task_finding_its_message_mid_processing_leaves_it_to_the_other_worker(client, graph_ok, fake_openai):
    post_meta(client, meta_body("text"))
    inbound = Message.objects.get(author=Message.Author.CUSTOMER)
    Message.objects.filter(pk=inbound.pk).update(status=Message.Status.PROCESSING)

    process_inbound_message.delay(inbound.pk)

    assert len(fake_openai.requests) == 1


def test_offline_responder_answers_and_labels_its_reply(client, graph_ok, fake_openai, settings):
    settings.OPENAI_API_KEY = ""

    post_meta(client, meta_body("text"))

    [sent] = graph_ok.sent(GRAPH_MESSAGES)
    assert sent["text"]["body"].startswith("[offline responder]")
    # It answers from the knowledge base (test_knowledge_replies.py), here empty.
    assert "I don't know" in sent["text"]["body"]
    assert fake_openai.requests == []


def test_instructions_come_from_the_prompt_file_and_the_prompt_id_is_passed(
    client, graph_ok, fake_openai, settings, tmp_path
):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You are the bakery's assistant.", encoding="utf-8")
    settings.BOT_INSTRUCTIONS_FILE = str(prompt)
    settings.OPENAI_PROMPT_ID = "pmpt_123"

    post_meta(client, meta_body("text"))

    request = fake_openai.requests[0]
    assert request["instructions"].startswith("You are the bakery's assistant.")
    assert request["prompt"] == {"id": "pmpt_123"}
    assert request["model"] == "gpt-test"


def test_the_context_holds_at_most_the_last_n_messages(client, graph_ok, fake_openai, settings):
    settings.CONTEXT_MAX_MESSAGES = 3
    import json

    for i in range(4):
        body = json.loads(meta_body("text"))
        message = body["entry"][0]["changes"][0]["value"]["messages"][0]
        message["id"] = f"wamid.ctx{i}"
        message["text"]["body"] = f"question {i}"
        post_meta(client, json.dumps(body).encode())

    last_input = fake_openai.requests[-1]["input"]
    assert len(last_input) == 3
    assert last_input[-1]["content"] == "question 3"


def test_a_message_in_a_conversation_taken_over_by_staff_gets_no_bot_reply(client, graph_ok, fake_openai):
    post_meta(client, meta_body("text"))
    conversation = Message.objects.get(author=Message.Author.CUSTOMER).conversation
    conversation.mode = conversation.Mode.HUMAN
    conversation.save()

    post_meta(client, meta_body("text_reply_context"))

    assert len(fake_openai.requests) == 1
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1


def test_no_model_input_carries_a_provider_id(client, graph_ok, fake_openai):
    post_meta(client, meta_body("text"))

    assert fake_openai.requests
    assert "wamid" not in str(fake_openai.requests)


def test_a_response_openai_stores_is_remembered_for_erasure_and_one_it_does_not_is_not(client, graph_ok, settings):
    post_meta(client, meta_body("text"))
    assert Message.objects.get(author=Message.Author.BOT).openai_response_id == ""

    settings.OPENAI_STORE = True
    post_meta(client, meta_body("text_reply_context"))

    stored = Message.objects.filter(author=Message.Author.BOT).latest("id")
    assert stored.openai_response_id == "resp_test"
