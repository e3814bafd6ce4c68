from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from django.core import mail
from werkzeug import Request, Response

from conversations.models import Channel, Conversation
from conversations.services.retries import RetryLater
from conversations.services.staff import resolve_conversation, take_over_conversation
from integrations.models import WebhookDelivery, WebhookEndpoint
from integrations.webhooks import SIGNATURE_HEADER, deliver_webhook, queue_event_deliveries
from profiles.models import ClientProfile, Contact, Provider

pytestmark = pytest.mark.django_db

SECRET = "shared-with-the-crm"


class Receiver:
    """The business's system: verifies each signature as its docs would tell it to."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[dict] = []
        self.rejected: list[str] = []

    def __call__(self, request: Request) -> Response:
        body = request.get_data()
        parts = dict(part.split("=", 1) for part in request.headers.get(SIGNATURE_HEADER, "").split(","))
        expected = hmac.new(SECRET.encode(), f"{parts.get('t')}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts.get("v1", "")) or abs(time.time() - int(parts["t"])) > 300:
            self.rejected.append(request.headers.get(SIGNATURE_HEADER, ""))
            return Response("bad signature", status=400)
        self.received.append({"body": json.loads(body), "event": request.headers["X-Whatsbot-Event"]})
        return Response("", status=self.status)


@pytest.fixture
def receiver(httpserver, settings):
    settings.OUTGOING_WEBHOOK_ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    handler = Receiver()
    httpserver.expect_request("/hooks/crm", method="POST").respond_with_handler(handler)
    return handler


@pytest.fixture
def endpoint(httpserver, receiver):
    return WebhookEndpoint.objects.create(
        name="CRM",
        url=httpserver.url_for("/hooks/crm"),
        events=["conversation.taken_over", "message.received"],
        secret=SECRET,
    )


@pytest.fixture
def conversation():
    profile = ClientProfile.objects.create(
        contact=Contact.objects.create(), provider=Provider.META, external_id="15551230002"
    )
    return Conversation.objects.create(profile=profile, channel=Channel.META_WHATSAPP, business_address="1")


def test_a_takeover_arrives_signed_with_ids_and_no_personal_data(endpoint, receiver, conversation, staff_user):
    take_over_conversation(conversation_id=conversation.pk, user=staff_user)

    [arrived] = receiver.received
    assert receiver.rejected == []
    assert arrived["event"] == "conversation.taken_over"
    assert arrived["body"]["data"] == {"conversation_id": conversation.pk, "staff_user_id": staff_user.pk}
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.response_status, delivery.attempts) == ("delivered", 200, 1)
    assert arrived["body"]["id"] == str(delivery.event_id)
    assert "15551230002" not in json.dumps(arrived)


def test_staff_resolving_a_conversation_in_the_live_inbox_is_told_with_who_did(
    endpoint, receiver, conversation, staff_user
):
    endpoint.events = ["conversation.resolved"]
    endpoint.save()

    resolve_conversation(conversation_id=conversation.pk, user=staff_user)

    [arrived] = receiver.received
    assert arrived["event"] == "conversation.resolved"
    assert arrived["body"]["data"] == {
        "conversation_id": conversation.pk,
        "reason": "staff",
        "staff_user_id": staff_user.pk,
    }


def test_an_event_nobody_subscribed_to_is_not_delivered(endpoint, receiver, conversation):
    queue_event_deliveries("contact.erased", {"erasure_id": 1, "contact_ids": [conversation.profile.contact_id]})

    assert receiver.received == []
    assert not WebhookDelivery.objects.exists()


def test_a_failing_receiver_is_retried_with_growing_waits_then_the_delivery_fails(endpoint, receiver, settings):
    settings.OUTGOING_WEBHOOK_MAX_ATTEMPTS = 3
    settings.RETRY_BACKOFF_BASE_SECONDS = 1.0
    receiver.status = 500
    [delivery_id] = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(endpoint=endpoint, event="message.received", body={"data": {}})]
    )
    waits = []
    for _ in range(3):
        try:
            deliver_webhook(delivery_id=delivery_id.pk)
        except RetryLater as exc:
            waits.append(exc.countdown)

    delivery = WebhookDelivery.objects.get()
    assert len(receiver.received) == 3
    assert (delivery.status, delivery.response_status, delivery.attempts) == ("failed", 500, 3)
    assert delivery.error == "HTTP 500"
    assert len(waits) == 2 and 1.0 <= waits[0] <= 1.25 and 2.0 <= waits[1] <= 2.5


def test_resend_from_the_admin_delivers_a_failed_delivery_with_the_same_event_id(
    endpoint, receiver, conversation, staff_user, admin_client, settings
):
    settings.OUTGOING_WEBHOOK_MAX_ATTEMPTS = 2
    receiver.status = 500
    take_over_conversation(conversation_id=conversation.pk, user=staff_user)  # through the task, retried
    failed = WebhookDelivery.objects.get()
    assert (failed.status, failed.attempts) == ("failed", 2)

    receiver.status = 200
    response = admin_client.post(
        "/admin/integrations/webhookdelivery/", {"action": "resend", "_selected_action": [failed.pk]}
    )

    assert response.status_code == 302
    resent = WebhookDelivery.objects.exclude(pk=failed.pk).get()
    assert (resent.status, resent.event_id) == ("delivered", failed.event_id)
    assert len(receiver.received) == 3


def test_an_endpoint_failing_again_and_again_is_disabled_and_staff_are_told(
    endpoint, receiver, conversation, staff_user, admin_client, settings
):
    settings.OUTGOING_WEBHOOK_MAX_ATTEMPTS = 1
    settings.OUTGOING_WEBHOOK_DISABLE_AFTER = 2
    settings.ADMINS = [("Ops", "ops@example.com")]
    receiver.status = 503
    for _ in range(2):
        queue_event_deliveries("message.received", {"message_id": 1})

    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert "Disabled after 2 failed deliveries" in endpoint.disabled_reason
    assert "Outgoing webhook 'CRM' disabled" in mail.outbox[0].subject
    page = admin_client.get("/admin/integrations/webhookendpoint/")
    assert "Disabled after 2 failed deliveries" in page.content.decode()
    queue_event_deliveries("message.received", {"message_id": 2})
    assert WebhookDelivery.objects.count() == 2


def test_a_private_address_not_allowed_by_the_operator_is_refused_without_retrying(httpserver, receiver, settings):
    settings.OUTGOING_WEBHOOK_ALLOWED_HOSTS = []
    endpoint = WebhookEndpoint.objects.create(
        name="sneaky", url=httpserver.url_for("/hooks/crm"), events=["message.received"], secret=SECRET
    )

    queue_event_deliveries("message.received", {"message_id": 1})

    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert receiver.received == []
