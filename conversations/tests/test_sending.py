import json

import pytest
import requests
import responses

from conversations.models import Message
from conversations.services.outbound import send_message
from conversations.services.retries import RetryLater
from conversations.services.sweep import requeue_stalled_messages
from conversations.tasks import send_outbound_message
from conversations.tests.fakes import GRAPH_MESSAGES, TWILIO_MESSAGES

from .helpers import meta_body, post_meta, post_twilio, twilio_params

pytestmark = pytest.mark.django_db

ACCEPTED = {"messaging_product": "whatsapp", "messages": [{"id": "wamid.ACCEPTED"}]}


def graph_error(code: int, message: str = "error") -> dict:
    return {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "A1"}}


def bot_reply() -> Message:
    return Message.objects.get(author=Message.Author.BOT)


def test_graph_5xx_then_success_sends_once(client, fake_providers):
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json=graph_error(131000, "Something went wrong"), status=500)
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json=ACCEPTED, status=200)

    post_meta(client, meta_body("text"))

    assert len(fake_providers.sent(GRAPH_MESSAGES)) == 2
    reply = bot_reply()
    assert (reply.status, reply.provider_message_id, reply.send_attempts) == ("sent", "wamid.ACCEPTED", 2)
    assert reply.error_code == ""


def test_graph_rate_limit_honours_retry_after(client, fake_providers):
    # The pipeline's own send fails for good; the test then sends the same reply again itself.
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json=graph_error(131026), status=400)
    post_meta(client, meta_body("text"))
    reply = bot_reply()
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.PENDING, send_attempts=0)
    fake_providers.add(
        responses.POST, GRAPH_MESSAGES, json=graph_error(130429), status=400, headers={"Retry-After": "7"}
    )

    with pytest.raises(RetryLater) as retry:
        send_message(message_id=reply.pk)

    assert retry.value.countdown == 7.0
    reply.refresh_from_db()
    assert (reply.status, reply.error_code) == (Message.Status.PENDING, "130429")


def test_a_graph_timeout_after_the_request_was_sent_is_unknown_and_not_resent_at_once(client, fake_providers):
    fake_providers.add(responses.POST, GRAPH_MESSAGES, body=requests.ReadTimeout("read timed out"))

    post_meta(client, meta_body("text"))
    reply = bot_reply()
    send_outbound_message.delay(reply.pk)

    assert len(fake_providers.sent(GRAPH_MESSAGES)) == 1
    reply.refresh_from_db()
    assert reply.status == Message.Status.UNKNOWN


def test_an_unknown_send_is_reconciled_from_the_status_webhook(client, fake_providers):
    fake_providers.add(responses.POST, GRAPH_MESSAGES, body=requests.ReadTimeout("read timed out"))
    post_meta(client, meta_body("text"))
    reply = bot_reply()
    status = json.loads(meta_body("status_delivered"))
    entry = status["entry"][0]["changes"][0]["value"]["statuses"][0]
    entry["id"] = "wamid.LATE"
    entry["biz_opaque_callback_data"] = str(reply.uid)

    post_meta(client, json.dumps(status).encode())

    reply.refresh_from_db()
    assert (reply.status, reply.provider_message_id) == ("delivered", "wamid.LATE")


def test_a_closed_window_fails_the_message_without_retry(client, fake_providers):
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json=graph_error(131047, "Re-engagement message"), status=400)

    post_meta(client, meta_body("text"))

    assert len(fake_providers.sent(GRAPH_MESSAGES)) == 1
    reply = bot_reply()
    assert (reply.status, reply.error_code, reply.error_title) == ("failed", "131047", "Re-engagement message")


def test_an_expired_token_fails_without_retry(client, fake_providers):
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json=graph_error(190, "Token expired"), status=401)

    post_meta(client, meta_body("text"))

    assert len(fake_providers.sent(GRAPH_MESSAGES)) == 1
    assert bot_reply().status == Message.Status.FAILED


def test_transient_failures_stop_at_the_attempt_cap(client, fake_providers, settings):
    settings.SEND_MAX_ATTEMPTS = 3
    for _ in range(5):
        fake_providers.add(responses.POST, GRAPH_MESSAGES, json=graph_error(2), status=503)

    post_meta(client, meta_body("text"))

    assert len(fake_providers.sent(GRAPH_MESSAGES)) == 3
    assert (bot_reply().status, bot_reply().send_attempts) == ("failed", 3)


def test_a_refused_connection_is_retried_because_nothing_was_sent(client, fake_providers):
    refused = requests.ConnectionError(
        requests.packages.urllib3.exceptions.MaxRetryError(
            None, "/", requests.packages.urllib3.exceptions.NewConnectionError(None, "refused")
        )
    )
    fake_providers.add(responses.POST, GRAPH_MESSAGES, body=refused)
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json=ACCEPTED)

    post_meta(client, meta_body("text"))

    assert bot_reply().status == Message.Status.SENT


def test_statuses_out_of_order_end_at_read(client, graph_ok):
    post_meta(client, meta_body("text"))
    reply = bot_reply()

    def status_body(name: str) -> bytes:
        body = json.loads(meta_body(name))
        body["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = reply.provider_message_id
        return json.dumps(body).encode()

    for name in ("status_read", "status_delivered", "status_sent", "status_read", "status_delivered"):
        assert post_meta(client, status_body(name)).status_code == 200

    reply.refresh_from_db()
    assert reply.status == Message.Status.READ


def test_a_failed_status_after_sent_records_the_error(client, graph_ok):
    post_meta(client, meta_body("text"))
    reply = bot_reply()
    body = json.loads(meta_body("status_failed"))
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = reply.provider_message_id

    post_meta(client, json.dumps(body).encode())

    reply.refresh_from_db()
    assert (reply.status, reply.error_code) == ("failed", "131047")


def test_a_status_for_an_unknown_message_is_accepted_and_ignored(client):
    assert post_meta(client, meta_body("status_read")).status_code == 200
    assert not Message.objects.exists()


def test_twilio_429_is_retried_and_21211_is_final(client, fake_providers):
    fake_providers.add(
        responses.POST, TWILIO_MESSAGES, json={"code": 20429, "message": "Too Many Requests"}, status=429
    )
    fake_providers.add(responses.POST, TWILIO_MESSAGES, json={"sid": "SM" + "1" * 32, "status": "queued"}, status=201)
    post_twilio(client, twilio_params("whatsapp_text"))
    assert bot_reply().status == Message.Status.SENT

    fake_providers.add(responses.POST, TWILIO_MESSAGES, json={"code": 21211, "message": "Invalid 'To'"}, status=400)
    post_twilio(client, twilio_params("sms_inbound"))
    failed = Message.objects.get(author=Message.Author.BOT, status=Message.Status.FAILED)
    assert failed.error_code == "21211"
    assert "Invalid 'To'" in failed.error_title
    assert len(fake_providers.sent(TWILIO_MESSAGES)) == 3


def test_the_sweep_reenqueues_stalled_work_and_marks_sends_in_doubt_unknown(client, graph_ok, settings):
    settings.SWEEP_REQUEUE_AFTER_SECONDS = 0
    settings.UNKNOWN_LOOKUP_AFTER_SECONDS = 0
    post_meta(client, meta_body("text"))
    reply = bot_reply()
    inbound = reply.in_reply_to
    # A broker that lost the doorbell: the inbound is still received. A worker that stopped
    # after its provider call: the reply's part is marked attempted, its answer never recorded.
    Message.objects.filter(pk=inbound.pk).update(status=Message.Status.RECEIVED)
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.SENDING, provider_message_id=None)
    reply.parts.update(provider_message_id="")

    counts = requeue_stalled_messages()

    reply.refresh_from_db()
    assert counts == {"accepted": 0, "inbound": 1, "outbound": 0, "unknown": 1}
    assert reply.status == Message.Status.UNKNOWN
    assert Message.objects.filter(author=Message.Author.BOT).count() == 1
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1
