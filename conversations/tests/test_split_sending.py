"""Replies formatted for the channel and sent in parts, in order, each part exactly once."""

import pytest
import responses

from conversations.models import Message, MessagePart
from conversations.tests.fakes import GRAPH_MESSAGES, TWILIO_MESSAGES

from .chat import graph_messages, say, say_on_twilio

pytestmark = pytest.mark.django_db

LONG_REPLY = "\n\n".join((f"Paragraph {i}. " + "Some words here. " * 100).strip() for i in range(3))  # ~5200 chars


def test_model_markdown_is_sent_as_whatsapp_formatting(client, graph_ok, fake_openai):
    fake_openai.answer("**Yes!** We deliver:\n\n- *Milan*\n- Rome")

    say(client, "Do you deliver?")

    [sent] = graph_messages(graph_ok, GRAPH_MESSAGES)
    assert sent["text"]["body"] == "*Yes!* We deliver:\n\n- _Milan_\n- Rome"
    assert Message.objects.get(author=Message.Author.BOT).text == "**Yes!** We deliver:\n\n- *Milan*\n- Rome"


def test_sms_gets_plain_text(client, twilio_ok, fake_openai):
    fake_openai.answer("**Yes!** We deliver to *Milan* — see [our page](https://shop.example/delivery).")

    say_on_twilio(client, "Do you deliver?", sid="SM" + "c" * 32, sms=True)

    [sent] = twilio_ok.sent(TWILIO_MESSAGES)
    assert sent["Body"] == "Yes! We deliver to Milan - see our page (https://shop.example/delivery)."


def test_a_long_reply_goes_out_in_parts_in_order_on_meta(client, graph_ok, fake_openai):
    fake_openai.answer(LONG_REPLY)

    say(client, "Tell me everything")

    bodies = [sent["text"]["body"] for sent in graph_messages(graph_ok, GRAPH_MESSAGES)]
    assert len(bodies) == 2
    assert all(len(body) <= 4096 for body in bodies)
    assert "\n\n".join(bodies) == LONG_REPLY
    sent = graph_messages(graph_ok, GRAPH_MESSAGES)
    reply = Message.objects.get(author=Message.Author.BOT)
    # The last part carries the message's reference: its statuses stand for the whole reply.
    # An earlier part carries its own, so its statuses can settle a send of it whose answer was lost.
    assert sent[0]["biz_opaque_callback_data"] == f"{reply.uid}#0"
    assert sent[1]["biz_opaque_callback_data"] == str(reply.uid)
    assert (reply.status, reply.provider_message_id) == (Message.Status.SENT, "wamid.OUT2")
    parts = list(reply.parts.values_list("index", "provider_message_id"))
    assert parts == [(0, "wamid.OUT1"), (1, "wamid.OUT2")]


def test_a_long_reply_on_twilio_whatsapp_respects_1600_characters(client, twilio_ok, fake_openai):
    fake_openai.answer(LONG_REPLY)

    say_on_twilio(client, "Tell me everything", sid="SM" + "d" * 32)

    bodies = [sent["Body"] for sent in twilio_ok.sent(TWILIO_MESSAGES)]
    assert len(bodies) == 4
    assert all(len(body) <= 1600 for body in bodies)
    assert " ".join(" ".join(bodies).split()) == " ".join(LONG_REPLY.split())
    assert bodies[0].startswith("Paragraph 0.")


def test_a_failure_on_a_later_part_resumes_there_without_resending_earlier_parts(client, fake_providers, fake_openai):
    fake_openai.answer(LONG_REPLY)
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json={"messages": [{"id": "wamid.P1"}]})
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json={"error": {"code": 131000}}, status=500)
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json={"messages": [{"id": "wamid.P2"}]})

    say(client, "Tell me everything")

    bodies = [sent["text"]["body"] for sent in fake_providers.sent(GRAPH_MESSAGES)]
    assert len(bodies) == 3
    assert bodies[1] == bodies[2] != bodies[0]
    reply = Message.objects.get(author=Message.Author.BOT)
    assert (reply.status, reply.provider_message_id, reply.send_attempts) == (Message.Status.SENT, "wamid.P2", 2)
    assert MessagePart.objects.filter(message=reply, sent_at__isnull=False).count() == 2


def test_a_refused_later_part_fails_the_message_and_keeps_the_record_of_what_went_out(
    client, fake_providers, fake_openai
):
    fake_openai.answer(LONG_REPLY)
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json={"messages": [{"id": "wamid.P1"}]})
    fake_providers.add(
        responses.POST, GRAPH_MESSAGES, json={"error": {"code": 131047, "message": "window"}}, status=400
    )

    say(client, "Tell me everything")

    reply = Message.objects.get(author=Message.Author.BOT)
    assert (reply.status, reply.error_code) == (Message.Status.FAILED, "131047")
    assert list(reply.parts.values_list("provider_message_id", flat=True)) == ["wamid.P1", ""]
