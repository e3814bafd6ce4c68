"""Bad input at the webhooks: every case gets a 4xx or is stored cleaned, never a 500.

Each request goes signed through the real endpoint. No worker runs: a delivery waits in its
ProcessedMessage row and each test runs the recorder itself, so "accepted" always also means
"recordable". Cases that PostgreSQL refused with DataError (NUL, lone surrogates, over-long
varchars) are marked `postgres` and run there too: DATABASE_URL=postgres://… pytest -m postgres.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from conversations.models import Attachment, CapturedWebhook, Conversation, Message, ProcessedMessage
from conversations.services.inbound import record_accepted
from profiles.models import ClientProfile, Contact

from .helpers import (
    PUBLIC_BASE_URL,
    VERIFY_TOKEN,
    meta_body,
    post_meta,
    post_twilio,
    twilio_params,
    twilio_signature,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_worker")]


def record_all() -> list[Message]:
    """Run the recorder on every accepted row; any error propagates."""
    pending = ProcessedMessage.objects.filter(pending__isnull=False).order_by("pk")
    return [record_accepted(processed_id=pk) for pk in pending.values_list("pk", flat=True)]


def meta_with(change: Callable[[dict[str, Any]], None], fixture: str = "text") -> bytes:
    """A Meta fixture with its first `value` changed, serialised as Meta does (escaped unicode)."""
    body = json.loads(meta_body(fixture))
    change(body["entry"][0]["changes"][0]["value"])
    return json.dumps(body).encode()


def first_message(value: dict[str, Any]) -> dict[str, Any]:
    return value["messages"][0]


def outbound_message(provider_message_id: str, provider: str = "meta") -> Message:
    profile = ClientProfile.objects.create(contact=Contact.objects.create(), provider=provider, external_id="US.1")
    conversation = Conversation.objects.create(profile=profile, channel="meta_whatsapp", business_address="1")
    return Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.BOT,
        provider=provider,
        provider_message_id=provider_message_id,
        status=Message.Status.SENT,
        text="We open at 9.",
    )


# --- Meta: signature and handshake -------------------------------------------------------------


def test_a_non_ascii_signature_header_is_refused_with_403(client):
    response = post_meta(client, meta_body("text"), signature="sha256=" + "é" * 64)

    assert response.status_code == 403
    assert not ProcessedMessage.objects.exists()


def test_a_non_ascii_verify_token_in_the_handshake_is_refused_with_403(client):
    response = client.get("/webhooks/meta/", {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "é"})

    assert response.status_code == 403


def test_the_handshake_still_echoes_the_challenge_for_the_right_token(client):
    response = client.get(
        "/webhooks/meta/", {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": VERIFY_TOKEN}
    )

    assert (response.status_code, response.content) == (200, b"42")


@pytest.mark.postgres
def test_a_captured_request_with_a_path_over_500_characters_is_kept_cut_to_fit(client, settings):
    settings.WEBHOOK_CAPTURE_HOURS = 24
    body = meta_body("text")

    response = client.post(
        "/webhooks/meta/?" + "q" * 600, data=body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256="x"
    )

    assert response.status_code == 403
    assert len(CapturedWebhook.objects.get().path) == 500


# --- Meta: the delivery as a whole --------------------------------------------------------------


def test_json_nested_5000_deep_is_refused_with_400(client):
    body = b'{"object": "whatsapp_business_account", "entry": ' + b"[" * 5000 + b"]" * 5000 + b"}"

    response = post_meta(client, body)

    assert response.status_code == 400
    assert not ProcessedMessage.objects.exists()


def test_a_body_that_is_not_utf8_is_refused_with_400(client):
    response = post_meta(client, b'{"object": "whatsapp_business_account", "entry": ["\xff"]}')

    assert response.status_code == 400


def test_an_envelope_of_the_wrong_shape_is_refused_with_400(client):
    body = meta_with(lambda value: value.update(messages={"id": "wamid.1"}))

    response = post_meta(client, body)

    assert response.status_code == 400
    assert not ProcessedMessage.objects.exists()


# --- Meta: one message refused on its own -------------------------------------------------------


@pytest.mark.postgres
def test_a_message_id_longer_than_128_characters_is_refused_and_the_delivery_answered_200(client):
    body = meta_with(lambda value: first_message(value).update(id="wamid." + "A" * 123))

    response = post_meta(client, body)

    assert response.status_code == 200  # refused for good: a retry would be refused the same way
    assert not ProcessedMessage.objects.exists()


@pytest.mark.postgres
def test_a_message_id_of_exactly_128_characters_is_recorded(client):
    wamid = "wamid." + "A" * 122
    body = meta_with(lambda value: first_message(value).update(id=wamid))

    assert post_meta(client, body).status_code == 200

    [message] = record_all()
    assert message.provider_message_id == wamid


@pytest.mark.postgres
def test_in_a_batch_a_bad_message_is_refused_alone_and_the_good_one_recorded(client):
    def add_bad_second(value: dict[str, Any]) -> None:
        value["messages"].append({**first_message(value), "id": "wamid.\x00bad"})  # an id must be printable
        value["messages"].append({**first_message(value), "id": "wamid.2", "from": None, "from_user_id": None})
        value["contacts"] = []  # so the third has no sender at all

    response = post_meta(client, meta_with(add_bad_second))

    assert response.status_code == 200
    [message] = record_all()
    assert message.text == "Hi! What are your opening hours?"
    assert ProcessedMessage.objects.count() == 1


def test_refused_messages_are_logged_once_at_warning_without_bodies_or_numbers(client, caplog):
    def two_bad(value: dict[str, Any]) -> None:
        message = first_message(value)
        message["text"]["body"] = "my secret words"
        value["messages"] = [{**message, "id": "x" * 200}, {**message, "id": "y" * 200}]

    with caplog.at_level(logging.INFO, logger="conversations"):
        assert post_meta(client, meta_with(two_bad)).status_code == 200

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    line = warnings[0].getMessage()
    assert "2 element(s) refused" in line
    assert "id longer than 128 characters" in line
    for secret in ("my secret words", "15551234567", "US.1000000000000000001", "xxxx"):
        assert secret not in line


@pytest.mark.postgres
def test_a_sender_id_longer_than_160_characters_is_refused(client):
    body = meta_with(lambda value: first_message(value).update(from_user_id="US." + "9" * 200))

    assert post_meta(client, body).status_code == 200
    assert not ProcessedMessage.objects.exists()


@pytest.mark.postgres
def test_a_business_number_id_longer_than_64_characters_is_refused(client):
    body = meta_with(lambda value: value["metadata"].update(phone_number_id="1" * 65))

    assert post_meta(client, body).status_code == 200
    assert not ProcessedMessage.objects.exists()


@pytest.mark.postgres
def test_a_media_id_longer_than_1024_characters_is_refused(client):
    body = meta_with(lambda value: first_message(value)["image"].update(id="1" * 1025), fixture="image")

    assert post_meta(client, body).status_code == 200
    assert not ProcessedMessage.objects.exists()


@pytest.mark.parametrize("field", ["text", "type", "from"])
def test_a_field_of_the_wrong_type_refuses_only_its_message(client, field):
    body = meta_with(lambda value: first_message(value).update({field: ["not", "a", "string"]}))

    assert post_meta(client, body).status_code == 200
    assert not ProcessedMessage.objects.exists()


# --- Meta: stored cleaned -----------------------------------------------------------------------


@pytest.mark.postgres
def test_a_30_digit_timestamp_is_stored_without_the_bogus_time(client):
    body = meta_with(lambda value: first_message(value).update(timestamp="9" * 30))

    assert post_meta(client, body).status_code == 200

    [message] = record_all()
    assert message.provider_timestamp is None
    assert message.text == "Hi! What are your opening hours?"


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("sent", "stored"),
    [("a\x00b", "ab"), ("a\ud800b", "a\ufffdb"), ("\udfff\x00", "\ufffd"), ("ok 👋🏽", "ok 👋🏽")],
)
def test_nul_and_lone_surrogates_in_a_text_and_a_name_are_stored_cleaned(client, sent, stored):
    def dirty(value: dict[str, Any]) -> None:
        first_message(value)["text"]["body"] = sent
        value["contacts"][0]["profile"]["name"] = sent

    assert post_meta(client, meta_with(dirty)).status_code == 200

    [message] = record_all()
    assert message.text == stored
    assert message.conversation.profile.display_name == stored


@pytest.mark.postgres
def test_nul_and_lone_surrogates_in_a_caption_and_filename_are_stored_cleaned(client):
    body = meta_with(
        lambda value: first_message(value)["document"].update(caption="c\x00\ud800", filename="f\x00.pdf"),
        fixture="document",
    )

    assert post_meta(client, body).status_code == 200

    [message] = record_all()
    attachment = Attachment.objects.get(message=message)
    assert (attachment.caption, attachment.original_filename) == ("c\ufffd", "f.pdf")


@pytest.mark.postgres
def test_a_display_name_over_200_characters_is_cut_to_fit(client):
    body = meta_with(lambda value: value["contacts"][0]["profile"].update(name="N" * 500))

    assert post_meta(client, body).status_code == 200

    [message] = record_all()
    assert message.conversation.profile.display_name == "N" * 200


@pytest.mark.postgres
def test_a_sender_that_is_not_a_phone_number_is_stored_without_one(client):
    def no_phone(value: dict[str, Any]) -> None:
        first_message(value).update({"from": "not-a-number", "from_user_id": None})
        value["contacts"][0].update(wa_id="not-a-number", user_id=None)

    body = meta_with(no_phone)

    assert post_meta(client, body).status_code == 200

    [message] = record_all()
    profile = message.conversation.profile
    assert (profile.external_id, profile.phone_number) == ("not-a-number", "")


# --- Meta: statuses -----------------------------------------------------------------------------


def test_a_status_with_a_30_digit_timestamp_still_moves_the_message(client):
    reply = outbound_message("wamid.OUT1")
    body = meta_with(lambda value: value["statuses"][0].update(id="wamid.OUT1", timestamp="9" * 30), "status_read")

    assert post_meta(client, body).status_code == 200

    reply.refresh_from_db()
    assert reply.status == Message.Status.READ


@pytest.mark.postgres
def test_a_failed_status_has_its_error_bounded(client):
    reply = outbound_message("wamid.OUT1")

    def long_error(value: dict[str, Any]) -> None:
        value["statuses"][0]["id"] = "wamid.OUT1"
        value["statuses"][0]["errors"][0].update(title="T\x00" * 400)

    assert post_meta(client, meta_with(long_error, "status_failed")).status_code == 200

    reply.refresh_from_db()
    assert (reply.status, reply.error_code, reply.error_title) == ("failed", "131047", "T" * 255)


@pytest.mark.postgres
def test_a_status_with_an_error_code_over_32_characters_is_refused(client):
    reply = outbound_message("wamid.OUT1")

    def huge_code(value: dict[str, Any]) -> None:
        value["statuses"][0]["id"] = "wamid.OUT1"
        value["statuses"][0]["errors"][0]["code"] = 10**40

    assert post_meta(client, meta_with(huge_code, "status_failed")).status_code == 200

    reply.refresh_from_db()
    assert reply.status == Message.Status.SENT


@pytest.mark.postgres
def test_a_status_id_longer_than_128_characters_is_refused(client):
    reply = outbound_message("wamid.OUT1")
    ref = str(reply.uid)
    body = meta_with(
        lambda value: value["statuses"][0].update(id="w" * 129, biz_opaque_callback_data=ref), "status_read"
    )

    assert post_meta(client, body).status_code == 200

    reply.refresh_from_db()
    assert (reply.status, reply.provider_message_id) == (Message.Status.SENT, "wamid.OUT1")


@pytest.mark.postgres
@pytest.mark.parametrize("suffix", ["#" + "9" * 30, "#-1", "#x", "#\x00"])
def test_a_callback_reference_with_a_part_index_that_is_no_number_is_ignored(client, suffix):
    reply = outbound_message("wamid.OUT1")
    ref = f"{reply.uid}{suffix}"
    body = meta_with(
        lambda value: value["statuses"][0].update(id="wamid.P1", biz_opaque_callback_data=ref), "status_read"
    )

    assert post_meta(client, body).status_code == 200

    reply.refresh_from_db()
    assert (reply.status, reply.provider_message_id) == (Message.Status.SENT, "wamid.OUT1")


def test_a_callback_reference_that_is_not_ours_is_ignored(client):
    body = meta_with(lambda value: value["statuses"][0].update(biz_opaque_callback_data="not-a-uuid"), "status_read")

    assert post_meta(client, body).status_code == 200


# --- Twilio ---------------------------------------------------------------------------------------


def test_a_non_numeric_num_media_is_refused_with_400(client):
    params = {**twilio_params("whatsapp_image_caption"), "NumMedia": "abc"}

    response = post_twilio(client, params)

    assert response.status_code == 400
    assert not ProcessedMessage.objects.exists()


@pytest.mark.postgres
@pytest.mark.parametrize("field", ["Body", "ProfileName"])
def test_a_nul_in_a_twilio_body_or_profile_name_is_stored_cleaned(client, field):
    params = {**twilio_params("whatsapp_text"), field: "a\x00b"}

    assert post_twilio(client, params).status_code == 200

    [message] = record_all()
    stored = message.text if field == "Body" else message.conversation.profile.display_name
    assert stored == "ab"


@pytest.mark.postgres
def test_invalid_utf8_in_a_twilio_body_is_stored_as_replacement_characters(client):
    params = twilio_params("whatsapp_text")
    # A lone surrogate cannot be UTF-8: on the wire it is these bytes, which Django decodes as U+FFFD.
    raw = urlencode({**params, "Body": "x"}).replace("Body=x", "Body=a%ED%A0%80b")
    decoded = {**params, "Body": "a\ufffd\ufffd\ufffdb"}

    response = client.post(
        "/webhooks/twilio/",
        data=raw,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=twilio_signature(PUBLIC_BASE_URL + "/webhooks/twilio/", decoded),
    )

    assert response.status_code == 200
    [message] = record_all()
    assert message.text == "a\ufffd\ufffd\ufffdb"


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("MessageSid", "SM" + "0" * 127),
        ("From", "whatsapp:+" + "1" * 160),
        ("To", "whatsapp:+" + "1" * 60),
        ("MediaUrl0", "https://api.twilio.com/" + "m" * 1024),
        ("MediaContentType0", "image/" + "j" * 100),
        ("MessageSid", "SM\x00"),
    ],
)
def test_a_twilio_identifier_that_does_not_fit_is_refused_with_400(client, field, value):
    params = {**twilio_params("whatsapp_image_caption"), field: value}

    assert post_twilio(client, params).status_code == 400
    assert not ProcessedMessage.objects.exists()


def test_a_json_body_nested_5000_deep_at_the_twilio_endpoint_is_refused(client):
    body = b"[" * 5000 + b"]" * 5000

    response = client.post("/webhooks/twilio/", data=body, content_type="application/json", HTTP_X_TWILIO_SIGNATURE="x")

    assert response.status_code in (400, 403)
    assert not ProcessedMessage.objects.exists()


@pytest.mark.postgres
def test_a_twilio_status_with_an_error_code_over_32_characters_is_refused_with_400(client):
    reply = outbound_message("SM9d0c601e7b67d8e38a24d2adb15b367d", provider="twilio")
    params = {**twilio_params("status_failed"), "ErrorCode": "6" * 33}

    assert post_twilio(client, params, path="/webhooks/twilio/status/").status_code == 400

    reply.refresh_from_db()
    assert reply.status == Message.Status.SENT


def test_a_twilio_status_with_a_reference_that_is_not_ours_is_ignored(client):
    reply = outbound_message("SM-another-one", provider="twilio")
    path = "/webhooks/twilio/status/?ref=not-a-uuid"

    assert post_twilio(client, twilio_params("status_delivered"), path=path).status_code == 204

    reply.refresh_from_db()
    assert reply.status == Message.Status.SENT


def test_a_twilio_status_finds_a_message_by_our_reference(client):
    reply = outbound_message("", provider="twilio")
    Message.objects.filter(pk=reply.pk).update(provider_message_id=None)
    path = f"/webhooks/twilio/status/?ref={uuid.UUID(str(reply.uid)).hex}"

    assert post_twilio(client, twilio_params("status_delivered"), path=path).status_code == 204

    reply.refresh_from_db()
    assert (reply.status, reply.provider_message_id) == ("delivered", "SM9d0c601e7b67d8e38a24d2adb15b367d")
