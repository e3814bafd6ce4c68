"""The model's context: bounded with a rolling summary, free of provider references, and the
OpenAI Conversations API mode; the Meta typing indicator."""

import json

import pytest
import requests
import responses

from conversations.ai import SUMMARY_INSTRUCTIONS
from conversations.models import Conversation, Message, ModelUsage
from conversations.services.context import add_staff_message_to_model_context
from conversations.tests.fakes import GRAPH_MESSAGES

from .chat import graph_messages, say, say_on_twilio
from .helpers import TWILIO_TOKEN, post_twilio, twilio_params

pytestmark = pytest.mark.django_db


def test_older_turns_are_folded_into_a_stored_summary_and_the_input_stays_bounded(
    client, graph_ok, fake_openai, settings
):
    settings.CONTEXT_MAX_MESSAGES = 4
    settings.CONTEXT_SUMMARY_BATCH = 4
    fake_openai.summarize("Ada asked about opening hours and delivery to Milan.", input_tokens=200, output_tokens=30)

    for i in range(1, 7):
        say(client, f"question {i}")

    assert len(fake_openai.summaries) == 1
    summary_request = fake_openai.summaries[0]
    assert summary_request["instructions"] == SUMMARY_INSTRUCTIONS
    assert "Customer: question 1" in summary_request["input"] and "Customer: question 3" in summary_request["input"]
    assert "question 4" not in summary_request["input"]  # still in the verbatim window then
    conversation = Conversation.objects.get()
    assert conversation.summary == "Ada asked about opening hours and delivery to Milan."
    fifth, sixth = fake_openai.requests[4], fake_openai.requests[5]
    assert "Summary of the earlier conversation:\nAda asked about opening hours" in fifth["instructions"]
    assert "Ada asked about opening hours" in sixth["instructions"]
    assert [len(request["input"]) for request in fake_openai.requests] == [1, 3, 4, 4, 4, 4]
    assert sixth["input"][-1]["content"] == "question 6"
    assert ModelUsage.objects.get(purpose=ModelUsage.Purpose.SUMMARY).input_tokens == 200


def test_a_failed_summary_keeps_the_reply_going(client, graph_ok, fake_openai, settings):
    settings.CONTEXT_MAX_MESSAGES = 2
    settings.CONTEXT_SUMMARY_BATCH = 1
    fake_openai.fail_summary(400, "invalid_request_error")

    say(client, "one")
    say(client, "two")

    assert len(fake_openai.summaries) == 1
    assert len(graph_messages(graph_ok, GRAPH_MESSAGES)) == 2
    assert Conversation.objects.get().summary == ""


def test_provider_media_urls_sids_and_tokens_never_reach_the_model(client, twilio_ok, fake_openai, settings):
    params = twilio_params("whatsapp_image_caption")
    say_on_twilio(client, "Hi", sid="SM" + "a" * 32)
    assert post_twilio(client, params).status_code == 200

    say_on_twilio(client, "Hello?", sid="SM" + "b" * 32)

    sent_to_model = json.dumps(fake_openai.requests + fake_openai.extractions + fake_openai.summaries)
    assert "Is this the right spare part?" in sent_to_model
    for secret in (
        params["MediaUrl0"],
        "api.twilio.com",
        params["MessageSid"],
        params["AccountSid"],
        "SM" + "a" * 32,
        TWILIO_TOKEN,
        "sk-test",
    ):
        assert secret not in sent_to_model


def test_provider_references_in_message_text_are_scrubbed_from_prompts_and_summaries(
    client, graph_ok, fake_openai, settings
):
    settings.CONTEXT_MAX_MESSAGES = 2
    settings.CONTEXT_SUMMARY_BATCH = 1
    leak = (
        "see https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1 "
        "and wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQ5ODJE and MM5bd7f7e451379ea2892a1939f02004da"
    )
    fake_openai.summarize(f"The customer sent {leak}")

    say(client, leak)
    say(client, "second")

    everything = json.dumps(fake_openai.requests + fake_openai.extractions + fake_openai.summaries)
    assert "lookaside.fbsbx.com" not in everything
    assert "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQ5ODJE" not in everything
    assert "MM5bd7f7e451379ea2892a1939f02004da" not in everything
    assert "[removed]" in everything
    summary = Conversation.objects.get().summary
    assert "fbsbx" not in summary and "wamid." not in summary and "[removed]" in summary


def test_the_conversations_api_mode_keeps_one_openai_conversation_and_a_new_one_after_reset(
    client, graph_ok, fake_openai, settings
):
    settings.OPENAI_USE_CONVERSATIONS = True
    settings.OPENAI_PROMPT_ID = "pmpt_42"

    say(client, "Hi")
    say(client, "Do you deliver?")

    assert len(fake_openai.conversations) == 1
    first, second = fake_openai.requests
    assert first["conversation"] == second["conversation"] == "conv_1"
    assert (first["store"], first["truncation"], first["prompt"]) == (True, "auto", {"id": "pmpt_42"})
    assert second["input"] == [{"role": "user", "content": "Do you deliver?"}]  # the server has the rest
    assert Conversation.objects.get().openai_conversation_id == "conv_1"

    say(client, "/reset")
    say(client, "Hello again")

    assert fake_openai.requests[-1]["conversation"] == "conv_2"
    assert Conversation.objects.get(status=Conversation.Status.OPEN).openai_conversation_id == "conv_2"


def test_staff_messages_are_added_to_the_openai_conversation(client, graph_ok, fake_openai, settings):
    settings.OPENAI_USE_CONVERSATIONS = True
    say(client, "Hi")
    conversation = Conversation.objects.get()
    staff_message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.STAFF,
        text="Hi Ada, Sam from the shop here.",
        provider="meta",
        status=Message.Status.PENDING,
    )

    assert add_staff_message_to_model_context(message_id=staff_message.pk) is True

    [(conversation_id, items)] = fake_openai.conversation_items
    assert conversation_id == "conv_1"
    assert items == [{"type": "message", "role": "assistant", "content": "Hi Ada, Sam from the shop here."}]


def test_staff_messages_need_no_call_in_the_default_mode(client, graph_ok, fake_openai):
    say(client, "Hi")
    staff_message = Message.objects.create(
        conversation=Conversation.objects.get(),
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.STAFF,
        text="Sam here.",
        provider="meta",
        status=Message.Status.SENT,
    )

    assert add_staff_message_to_model_context(message_id=staff_message.pk) is False
    say(client, "Thanks Sam")

    assert [turn["content"] for turn in fake_openai.requests[-1]["input"]][-2:] == ["Sam here.", "Thanks Sam"]


def test_meta_messages_are_marked_read_with_a_typing_indicator_before_the_reply(
    client, graph_ok, fake_openai, settings
):
    settings.WHATSAPP_TYPING_INDICATOR = True

    say(client, "Hi", wamid="wamid.TYPING1")

    receipt, reply = graph_ok.sent(GRAPH_MESSAGES)
    assert receipt == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.TYPING1",
        "typing_indicator": {"type": "text"},
    }
    assert reply["text"]["body"] == fake_openai.default_text
    assert graph_ok.calls[0].request.headers["Authorization"] == "Bearer test-graph-token"


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500, "json": {"error": {"code": 131000, "message": "Something went wrong"}}},
        {"body": requests.ConnectionError("reset by peer")},
        {"status": 200, "body": "not json"},
    ],
)
def test_a_failing_typing_indicator_never_blocks_the_reply(client, fake_providers, fake_openai, settings, failure):
    settings.WHATSAPP_TYPING_INDICATOR = True
    fake_providers.add(responses.POST, GRAPH_MESSAGES, **failure)
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json={"messages": [{"id": "wamid.OUT1"}]})

    say(client, "Hi")

    reply = Message.objects.get(author=Message.Author.BOT)
    assert (reply.status, reply.provider_message_id) == (Message.Status.SENT, "wamid.OUT1")
