import json
import logging

import pytest

from conversations.models import Conversation, Message, ProcessedMessage
from conversations.tests.fakes import GRAPH_MESSAGES
from profiles.models import ClientProfile

from .helpers import VERIFY_TOKEN, meta_body, meta_signature, meta_text, post_meta

pytestmark = pytest.mark.django_db


def test_handshake_echoes_the_challenge_for_our_verify_token(client):
    response = client.get(
        "/webhooks/meta/",
        {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY_TOKEN},
    )
    assert response.status_code == 200
    assert response.content == b"1158201444"


def test_handshake_with_a_wrong_token_is_refused(client):
    response = client.get(
        "/webhooks/meta/", {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "guess"}
    )
    assert response.status_code == 403


def test_a_text_gets_exactly_one_reply_through_the_graph_api(client, graph_ok, fake_openai):
    fake_openai.answer("We open at 9.")

    response = post_meta(client, meta_body("text"))

    assert response.status_code == 200
    [sent] = graph_ok.sent(GRAPH_MESSAGES)
    assert sent["to"] == "+15551234567"
    assert sent["text"]["body"] == "We open at 9."
    assert sent["messaging_product"] == "whatsapp"
    assert graph_ok.calls[0].request.headers["Authorization"] == "Bearer test-graph-token"
    reply = Message.objects.get(author=Message.Author.BOT)
    assert reply.status == Message.Status.SENT
    assert reply.provider_message_id == "wamid.OUT1"
    assert (reply.input_tokens, reply.output_tokens) == (42, 7)
    assert sent["biz_opaque_callback_data"] == str(reply.uid)
    inbound = Message.objects.get(author=Message.Author.CUSTOMER)
    assert inbound.status == Message.Status.HANDLED
    assert fake_openai.requests[0]["input"][-1] == {"role": "user", "content": inbound.text}
    assert fake_openai.requests[0]["store"] is False


def test_the_model_sees_the_earlier_turns_of_the_conversation(client, graph_ok, fake_openai):
    post_meta(client, meta_body("text"))
    post_meta(client, meta_body("text_reply_context"))

    second_call = fake_openai.requests[1]["input"]
    assert [turn["role"] for turn in second_call] == ["user", "assistant", "user"]
    assert second_call[1]["content"] == fake_openai.default_text


def test_a_payload_with_two_messages_gets_two_replies(client, graph_ok):
    post_meta(client, meta_body("batched_two_messages"))

    assert Message.objects.filter(author=Message.Author.CUSTOMER).count() == 2
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 2


def test_a_username_user_without_phone_number_is_answered_by_bsuid(client, graph_ok):
    post_meta(client, meta_body("text_username_no_phone"))

    [sent] = graph_ok.sent(GRAPH_MESSAGES)
    assert sent["recipient"] == "US.1000000000000000003"
    assert "to" not in sent
    profile = ClientProfile.objects.get()
    assert profile.external_id == "US.1000000000000000003"
    assert profile.phone_number == ""
    assert profile.display_name == "Grace H."


def test_a_customer_is_keyed_on_the_business_scoped_user_id_with_the_phone_kept(client, graph_ok):
    body = json.loads(meta_body("text"))
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["user_id"] = value["messages"][0]["from_user_id"] = "US.42"
    raw = json.dumps(body).encode()

    post_meta(client, raw)

    profile = ClientProfile.objects.get()
    assert (profile.external_id, profile.phone_number) == ("US.42", "+15551234567")


@pytest.mark.parametrize("signature", ["", "sha256=" + "0" * 64, meta_signature(b"other body")])
def test_a_bad_or_missing_signature_is_refused_and_nothing_stored(client, graph_ok, signature):
    response = post_meta(client, meta_body("text"), signature=signature)

    assert response.status_code == 403
    assert not Message.objects.exists()
    assert not ProcessedMessage.objects.exists()


def test_malformed_json_is_refused_and_nothing_stored(client):
    body = b'{"object": "whatsapp_business_account", "entry": [{'

    response = post_meta(client, body)

    assert response.status_code == 400
    assert not Message.objects.exists()


def test_a_wrong_shape_is_refused_and_nothing_stored(client):
    body = json.dumps({"entry": [{"changes": [{"field": "messages", "value": {"messages": [{"id": "x"}]}}]}]})

    response = post_meta(client, body.encode())

    assert response.status_code == 400
    assert not ProcessedMessage.objects.exists()


def test_a_body_over_the_limit_is_refused_with_413(client, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = meta_body("text").replace(b"opening hours", b"x" * 2000)

    response = post_meta(client, body)

    assert response.status_code == 413
    assert not Message.objects.exists()


def test_escaped_unicode_verifies_and_round_trips_exactly(client, graph_ok):
    raw = meta_body("text_unicode_wire")
    expected = json.loads(raw)["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"]

    assert post_meta(client, raw).status_code == 200

    inbound = Message.objects.get(author=Message.Author.CUSTOMER)
    assert inbound.text == expected
    # Escaped on the wire (ASCII bytes, `\uXXXX`), real characters once stored.
    assert raw.isascii() and not expected.isascii()


def test_emoji_and_right_to_left_text_round_trip(client, graph_ok, fake_openai):
    body = json.loads(meta_body("text"))
    text = "مرحبا 👋🏽 שלום — ok?"
    body["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = text
    raw = json.dumps(body).encode()  # escaped unicode on the wire, as Meta sends it
    fake_openai.answer("أهلاً 🌙")

    assert post_meta(client, raw).status_code == 200

    assert Message.objects.get(author=Message.Author.CUSTOMER).text == text
    assert fake_openai.requests[0]["input"][-1]["content"] == text
    assert graph_ok.sent(GRAPH_MESSAGES)[0]["text"]["body"] == "أهلاً 🌙"


def test_an_unknown_message_type_is_stored_and_answered_politely_without_the_model(client, graph_ok, fake_openai):
    response = post_meta(client, meta_body("unsupported"))

    assert response.status_code == 200
    inbound = Message.objects.get(author=Message.Author.CUSTOMER)
    assert inbound.kind == Message.Kind.UNSUPPORTED
    [sent] = graph_ok.sent(GRAPH_MESSAGES)
    assert "only read text" in sent["text"]["body"]
    assert fake_openai.requests == []


def test_a_type_never_seen_before_is_stored_as_unsupported(client, graph_ok):
    body = json.loads(meta_body("text"))
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message["type"] = "hologram"
    message["hologram"] = {"id": "1"}
    raw = json.dumps(body).encode()

    assert post_meta(client, raw).status_code == 200
    assert Message.objects.get(author=Message.Author.CUSTOMER).kind == Message.Kind.UNSUPPORTED
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1


FIXTURE_SHAPES = {
    # fixture: (messages stored, replies sent, kind of the first message)
    "text": (1, 1, "text"),
    "text_reply_context": (1, 1, "text"),
    "text_unicode_wire": (1, 1, "text"),
    "text_username_no_phone": (1, 1, "text"),
    "image": (1, 1, "image"),
    "audio_voice": (1, 1, "audio"),
    "video": (1, 1, "video"),
    "document": (1, 1, "document"),
    "sticker": (1, 1, "sticker"),
    "location": (1, 1, "location"),
    "contacts": (1, 1, "contacts"),
    "interactive_button_reply": (1, 1, "interactive"),
    "interactive_list_reply": (1, 1, "interactive"),
    "interactive_nfm_reply": (1, 1, "interactive"),
    "button_template_quick_reply": (1, 1, "interactive"),
    "reaction": (1, 0, "reaction"),
    "reaction_removed": (1, 0, "reaction"),
    "order": (1, 1, "order"),
    "system_user_changed_number": (1, 0, "system"),
    "unsupported": (1, 1, "unsupported"),
    "batched_two_messages": (2, 2, "text"),
    "batched_message_and_status": (1, 1, "text"),
    "status_sent": (0, 0, None),
    "status_delivered": (0, 0, None),
    "status_read": (0, 0, None),
    "status_failed": (0, 0, None),
    "value_errors": (0, 0, None),
}


@pytest.mark.parametrize("fixture", sorted(FIXTURE_SHAPES))
def test_every_meta_payload_shape_is_accepted_and_handled(client, graph_ok, fixture):
    stored, replies, kind = FIXTURE_SHAPES[fixture]

    response = post_meta(client, meta_body(fixture))

    assert response.status_code == 200
    inbound = Message.objects.filter(direction=Message.Direction.INBOUND)
    assert inbound.count() == stored
    if kind:
        assert inbound.first().kind == kind
        assert set(inbound.values_list("status", flat=True)) == {Message.Status.HANDLED}
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == replies


def test_choices_and_locations_reach_the_model_as_words(client, graph_ok, fake_openai):
    post_meta(client, meta_body("interactive_button_reply"))
    post_meta(client, meta_body("location"))

    button_words = fake_openai.requests[0]["input"][-1]["content"]
    location_words = fake_openai.requests[1]["input"][-1]["content"]
    assert button_words and "wamid" not in button_words
    assert location_words.startswith("Shared location:")


def test_a_conversation_is_opened_once_per_customer_and_number(client, graph_ok):
    post_meta(client, meta_body("text"))
    post_meta(client, meta_body("text_reply_context"))

    conversation = Conversation.objects.get()
    assert conversation.messages.filter(direction=Message.Direction.INBOUND).count() == 2
    assert conversation.business_address == "110000000000001"
    assert conversation.last_customer_message_at is not None


# Meta writes the display number as digits; the rule compares numbers, however they are spelt.
@pytest.mark.parametrize("display_number", ["15550001234", "+1 555-000-1234"])
def test_a_message_from_the_business_own_number_never_becomes_a_customer(client, graph_ok, caplog, display_number):
    """The business's number writing to itself (a test from the WhatsApp Business app, a bot
    loop): its `from` is the display number, never the phone number id the conversation keeps."""
    body = json.loads(meta_text("Hi! What are your opening hours?", "wamid.CUSTOMER"))
    value = body["entry"][0]["changes"][0]["value"]
    value["metadata"]["display_phone_number"] = display_number
    ours = json.loads(meta_text("a test from our phone", "wamid.OURS", wa_id="15550001234", user_id="US.ours"))
    value["contacts"] += ours["entry"][0]["changes"][0]["value"]["contacts"]
    value["messages"] += ours["entry"][0]["changes"][0]["value"]["messages"]

    with caplog.at_level(logging.INFO):
        response = post_meta(client, json.dumps(body).encode())

    assert response.status_code == 200
    assert list(ProcessedMessage.objects.values_list("provider_message_id", flat=True)) == [
        ProcessedMessage.key_for("wamid.CUSTOMER")
    ]
    assert list(ClientProfile.objects.values_list("phone_number", flat=True)) == ["+15551234567"]
    assert [sent["to"] for sent in graph_ok.sent(GRAPH_MESSAGES)] == ["+15551234567"]
    assert "1 message(s) from the business's own number" in caplog.text and "1555" not in caplog.text


def test_message_echoes_are_acknowledged_and_never_recorded(client, graph_ok, caplog):
    """Coexistence: what the business writes in the WhatsApp Business app comes back as an
    `smb_message_echoes` change, `from` being its own number. Not a customer's message."""
    echo = {"from": "15550001234", "to": "15551234567", "id": "wamid.ECHO", "timestamp": "1767268800"}
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "120000000000001",
                "changes": [
                    {
                        "field": "smb_message_echoes",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550001234", "phone_number_id": "110000000000001"},
                            "message_echoes": [
                                {**echo, "type": "text", "text": {"body": "We open at 9."}},
                                {**echo, "id": "wamid.ECHO2", "type": "text", "text": {"body": "See you!"}},
                            ],
                        },
                    }
                ],
            }
        ],
    }

    with caplog.at_level(logging.INFO):
        response = post_meta(client, json.dumps(body).encode())

    assert response.status_code == 200
    assert not ProcessedMessage.objects.exists() and not ClientProfile.objects.exists()
    assert not Message.objects.exists() and not graph_ok.sent(GRAPH_MESSAGES)
    [line] = [record.getMessage() for record in caplog.records if "echo" in record.getMessage()]
    assert "2 message echo(es)" in line and "1555" not in line
