import logging

import pytest

from conversations.models import Channel, Conversation, Message, ProcessedMessage
from conversations.tests.fakes import TWILIO_MESSAGES
from conversations.webhooks import _warn_of_misrouted_status_callbacks
from profiles.models import ClientProfile

from .helpers import PUBLIC_BASE_URL, post_twilio, twilio_params, twilio_signature

pytestmark = pytest.mark.django_db


def test_a_whatsapp_text_gets_one_reply_from_the_number_the_customer_wrote_to(client, twilio_ok, fake_openai):
    fake_openai.answer("We open at 9.")

    response = post_twilio(client, twilio_params("whatsapp_text"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml"
    assert response.content.endswith(b"<Response></Response>")
    [sent] = twilio_ok.sent(TWILIO_MESSAGES)
    assert sent["From"] == "whatsapp:+15550001234"
    assert sent["To"] == "whatsapp:+15551234567"
    assert sent["Body"] == "We open at 9."
    reply = Message.objects.get(author=Message.Author.BOT)
    assert sent["StatusCallback"] == f"{PUBLIC_BASE_URL}/webhooks/twilio/status/?ref={reply.uid}"
    assert reply.status == Message.Status.SENT
    assert reply.provider_message_id.startswith("SM")
    assert Conversation.objects.get().channel == Channel.TWILIO_WHATSAPP


def test_an_sms_gets_one_reply_as_sms(client, twilio_ok):
    post_twilio(client, twilio_params("sms_inbound"))

    [sent] = twilio_ok.sent(TWILIO_MESSAGES)
    assert (sent["From"], sent["To"]) == ("+15550001234", "+15551234567")
    conversation = Conversation.objects.get()
    assert conversation.channel == Channel.TWILIO_SMS
    assert conversation.profile.phone_number == "+15551234567"


def test_a_bad_signature_is_refused_and_nothing_stored(client, twilio_ok):
    response = post_twilio(client, twilio_params("whatsapp_text"), signature="bm90IGEgc2lnbmF0dXJl")

    assert response.status_code == 403
    assert not ProcessedMessage.objects.exists()


def test_a_signature_over_other_parameters_is_refused(client, twilio_ok):
    params = twilio_params("whatsapp_text")
    signature = twilio_signature(PUBLIC_BASE_URL + "/webhooks/twilio/", params)
    params["Body"] = "tampered"

    assert post_twilio(client, params, signature=signature).status_code == 403
    assert not Message.objects.exists()


def test_a_missing_signature_is_refused(client):
    response = client.post("/webhooks/twilio/", data=twilio_params("sms_inbound"))

    assert response.status_code == 403


def test_the_signature_is_checked_against_the_public_url_behind_a_proxy(client, twilio_ok):
    # Twilio called https://bot.example.com/...; the app sees plain http from its proxy.
    params = twilio_params("whatsapp_text")

    response = client.post(
        "/webhooks/twilio/",
        data=params,
        HTTP_X_TWILIO_SIGNATURE=twilio_signature(f"{PUBLIC_BASE_URL}/webhooks/twilio/", params),
        HTTP_HOST="localhost:8000",
    )

    assert response.status_code == 200


def test_without_public_url_a_tls_terminating_proxy_is_trusted_for_the_scheme(client, settings, twilio_ok):
    settings.PUBLIC_BASE_URL = ""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    params = twilio_params("sms_inbound")

    response = client.post(
        "/webhooks/twilio/",
        data=params,
        HTTP_X_TWILIO_SIGNATURE=twilio_signature("https://bot.example.com/webhooks/twilio/", params),
        HTTP_HOST="bot.example.com",
        HTTP_X_FORWARDED_PROTO="https",
    )

    assert response.status_code == 200


def test_a_messaging_service_request_validates(client, twilio_ok):
    params = twilio_params("whatsapp_text")
    assert params["MessagingServiceSid"].startswith("MG")

    assert post_twilio(client, params).status_code == 200
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1


def test_a_shared_key_signature_validates(client, settings, twilio_ok):
    import base64
    import hashlib
    import hmac

    settings.TWILIO_WEBHOOK_SHARED_KEY = "shared-key-secret"
    params = twilio_params("sms_inbound")
    url = PUBLIC_BASE_URL + "/webhooks/twilio/"
    payload = url + "".join(k + params[k] for k in sorted(params))
    signature = base64.b64encode(hmac.new(b"shared-key-secret", payload.encode(), hashlib.sha256).digest()).decode()

    response = client.post(
        "/webhooks/twilio/",
        data=params,
        HTTP_X_TWILIO_SIGNATURE=signature,
        HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS="key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
    )

    assert response.status_code == 200


def test_a_message_for_another_account_is_refused(client, settings):
    settings.TWILIO_ACCOUNT_SID = "AC00000000000000000000000000000000"
    response = post_twilio(client, twilio_params("whatsapp_text"))

    assert response.status_code == 400
    assert not Message.objects.exists()


# Real commits: the duplicate delivery's INSERT fails on its own (autocommit) as in production;
# inside a test transaction that IntegrityError would poison the whole test.
@pytest.mark.django_db(transaction=True)
def test_a_duplicate_delivery_is_answered_once(client, twilio_ok):
    for _ in range(3):
        assert post_twilio(client, twilio_params("whatsapp_text")).status_code == 200

    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert len(twilio_ok.sent(TWILIO_MESSAGES)) == 1


@pytest.mark.parametrize(
    ("fixture", "kind", "replies"),
    [
        ("whatsapp_text", "text", 1),
        ("sms_inbound", "text", 1),
        ("whatsapp_image_caption", "image", 1),
        ("whatsapp_voice_note", "audio", 1),
        ("whatsapp_location", "location", 1),
        ("whatsapp_quick_reply_button", "interactive", 1),
    ],
)
def test_every_twilio_inbound_shape_is_stored_and_answered(client, twilio_ok, fixture, kind, replies):
    assert post_twilio(client, twilio_params(fixture)).status_code == 200

    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    assert inbound.kind == kind
    assert inbound.status == Message.Status.HANDLED
    assert len(twilio_ok.sent(TWILIO_MESSAGES)) == replies


@pytest.mark.parametrize(
    ("fixture", "status"),
    [("status_delivered", "delivered"), ("status_read", "read"), ("status_failed", "failed")],
)
def test_status_callbacks_move_the_outbound_message(client, twilio_ok, fixture, status):
    post_twilio(client, twilio_params("whatsapp_text"))
    reply = Message.objects.get(author=Message.Author.BOT)
    params = twilio_params(fixture)
    params["MessageSid"] = params["SmsSid"] = reply.provider_message_id

    response = post_twilio(client, params, path="/webhooks/twilio/status/")

    assert response.status_code == 204
    reply.refresh_from_db()
    assert reply.status == status
    if status == "failed":
        assert reply.error_code == "63016"


def test_a_status_callback_for_an_unknown_message_is_accepted_and_ignored(client):
    response = post_twilio(client, twilio_params("status_delivered"), path="/webhooks/twilio/status/")

    assert response.status_code == 204
    assert not Message.objects.exists()


@pytest.fixture
def first_misrouted_status():
    """The warning about misrouted status callbacks is logged once per process."""
    _warn_of_misrouted_status_callbacks.cache_clear()
    yield
    _warn_of_misrouted_status_callbacks.cache_clear()


def test_a_status_callback_posted_to_the_inbound_url_is_applied_and_makes_no_customer(
    client, twilio_ok, first_misrouted_status, caplog
):
    # A number whose status callback URL is the incoming-message webhook: From is our number.
    post_twilio(client, twilio_params("whatsapp_text"))
    reply = Message.objects.get(author=Message.Author.BOT)
    delivered, read = twilio_params("status_delivered"), twilio_params("status_read")
    for params in (delivered, read):
        params["MessageSid"] = params["SmsSid"] = reply.provider_message_id

    with caplog.at_level(logging.WARNING):
        responses = [post_twilio(client, params) for params in (delivered, read)]

    assert [response.status_code for response in responses] == [204, 204]
    reply.refresh_from_db()
    assert reply.status == Message.Status.READ
    assert ClientProfile.objects.get().external_id == "whatsapp:+15551234567"
    assert Conversation.objects.count() == 1 and len(twilio_ok.sent(TWILIO_MESSAGES)) == 1
    [warning] = [record for record in caplog.records if "status callback" in record.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "1555" not in caplog.text  # neither our number nor the customer's


def test_a_status_callback_of_an_unknown_message_at_the_inbound_url_stores_nothing(
    client, twilio_ok, first_misrouted_status
):
    response = post_twilio(client, twilio_params("status_delivered"))

    assert response.status_code == 204
    assert not ProcessedMessage.objects.exists()
    assert not ClientProfile.objects.exists() and not twilio_ok.sent(TWILIO_MESSAGES)


def test_a_message_from_one_of_our_own_numbers_never_becomes_a_customer(client, twilio_ok, caplog):
    post_twilio(client, twilio_params("whatsapp_text"))  # customers write to whatsapp:+15550001234
    from_our_other_number = {
        **twilio_params("whatsapp_text"),
        "MessageSid": "SM00000000000000000000000000000002",
        "From": "whatsapp:+15550001234",
        "To": "whatsapp:+15550005678",
    }
    to_itself = {
        **from_our_other_number,
        "MessageSid": "SM00000000000000000000000000000003",
        "To": "whatsapp:+15550009999",
        "From": "whatsapp:+15550009999",
    }

    with caplog.at_level(logging.WARNING):
        responses = [post_twilio(client, params) for params in (from_our_other_number, to_itself)]

    assert [response.status_code for response in responses] == [200, 200]
    assert list(ClientProfile.objects.values_list("external_id", flat=True)) == ["whatsapp:+15551234567"]
    assert Conversation.objects.count() == 1
    assert len(twilio_ok.sent(TWILIO_MESSAGES)) == 1  # the customer's reply; nothing to our numbers
    assert ProcessedMessage.objects.filter(pending__isnull=False).count() == 0
    assert ProcessedMessage.objects.count() == 2  # the one to itself is left out when parsed
    assert "own number" in caplog.text and "1555" not in caplog.text
