"""Outgoing webhooks: events to the URLs staff configured, signed, retried, logged.

Each event becomes one WebhookDelivery row per subscribed endpoint (the delivery log), sent by
a Celery task. The body is JSON; `X-Whatsbot-Signature` is `t=<unix time>,v1=<hex>` where
hex is HMAC-SHA256 with the endpoint's secret over `<unix time>.<body>` (the timestamp inside
the signed bytes, so a receiver refuses replays older than a few minutes). A non-2xx answer, a
timeout or a refused connection is retried with exponential backoff up to
OUTGOING_WEBHOOK_MAX_ATTEMPTS, then the delivery is failed; an endpoint whose last
OUTGOING_WEBHOOK_DISABLE_AFTER deliveries all failed is disabled, and staff are told (an error
in the log, mail to ADMINS, the reason on the endpoint in the admin). URLs go through the
SSRF-guarded client: https and public addresses only, except hosts the operator allowed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid

import requests
from django.conf import settings
from django.core.mail import mail_admins
from django.db.models import F
from django.utils import timezone

from conversations import safe_http
from conversations.dispatch import enqueue
from conversations.services.retries import RetryLater, backoff_delay
from integrations.models import WebhookDelivery, WebhookEndpoint
from telemetry import metrics

logger = logging.getLogger(__name__)

DELIVER = "integrations.tasks.deliver_outgoing_webhook"
SIGNATURE_HEADER = "X-Whatsbot-Signature"
# Which endpoints want which events, per process, for a few seconds: an event costs no query
# while nobody subscribed (most installations), and an admin change shows within seconds.
SUBSCRIPTIONS_CACHE_SECONDS = 5.0


class _Subscriptions:
    fetched_at = -float("inf")
    endpoints: list[tuple[int, list[str]]] = []


_subscriptions = _Subscriptions()


def _subscribed(event: str) -> list[int]:
    now = time.monotonic()
    if now - _subscriptions.fetched_at > SUBSCRIPTIONS_CACHE_SECONDS:
        _subscriptions.endpoints = list(WebhookEndpoint.objects.filter(is_active=True).values_list("pk", "events"))
        _subscriptions.fetched_at = now
    return [pk for pk, events in _subscriptions.endpoints if event in events]


def forget_subscriptions() -> None:
    """Read the endpoints again at the next event (after an admin change in this process)."""
    _subscriptions.fetched_at = -float("inf")


def queue_event_deliveries(event: str, data: dict) -> list[int]:
    """The events sink (conversations/events.py): a delivery per subscribed endpoint, each sent
    by a task; their ids."""
    endpoint_ids = _subscribed(event)
    if not endpoint_ids:
        return []
    event_id = uuid.uuid4()
    body = {"id": str(event_id), "event": event, "created_at": timezone.now().isoformat(), "data": data}
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(endpoint_id=pk, event_id=event_id, event=event, body=body) for pk in endpoint_ids
    )
    for delivery in deliveries:
        enqueue(DELIVER, delivery.pk)
    return [delivery.pk for delivery in deliveries]


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def deliver_webhook(*, delivery_id: int) -> WebhookDelivery:
    """Send one pending delivery once; raises RetryLater while attempts remain after a failure."""
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if delivery.status != WebhookDelivery.Status.PENDING:
        return delivery
    if not endpoint.is_active:
        _finish(delivery, WebhookDelivery.Status.FAILED, error="endpoint disabled")
        return delivery
    body = json.dumps(delivery.body, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "whatsbot-webhooks/1",
        "X-Whatsbot-Event": delivery.event,
        "X-Whatsbot-Delivery": str(delivery.event_id),
        SIGNATURE_HEADER: sign(secret=endpoint.secret, timestamp=timestamp, body=body),
    }
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") + 1, last_attempt_at=timezone.now())
    delivery.refresh_from_db(fields=["attempts", "last_attempt_at"])
    status_code, error, may_retry = None, "", True
    try:
        response = safe_http.post(
            endpoint.url,
            body=body,
            headers=headers,
            timeout=settings.OUTGOING_WEBHOOK_TIMEOUT_SECONDS,
            allowed_hosts=frozenset(settings.OUTGOING_WEBHOOK_ALLOWED_HOSTS),
        )
        status_code = response.status_code
        if 200 <= status_code < 300:
            _finish(delivery, WebhookDelivery.Status.DELIVERED, response_status=status_code)
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=0)
            metrics.count_outgoing_webhook(event=delivery.event, outcome="delivered")
            return delivery
        error = f"HTTP {status_code}"
    except safe_http.UnsafeURL as exc:
        error, may_retry = str(exc), False
    except (requests.RequestException, safe_http.MediaFetchError) as exc:
        error = type(exc).__name__
    if may_retry and delivery.attempts < settings.OUTGOING_WEBHOOK_MAX_ATTEMPTS:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(response_status=status_code, error=error[:255])
        metrics.count_outgoing_webhook(event=delivery.event, outcome="retry")
        logger.warning("Outgoing webhook %s to endpoint %s failed (%s); retrying.", delivery.pk, endpoint.pk, error)
        raise RetryLater(backoff_delay(attempt=delivery.attempts))
    _finish(delivery, WebhookDelivery.Status.FAILED, response_status=status_code, error=error)
    metrics.count_outgoing_webhook(event=delivery.event, outcome="failed")
    logger.error("Outgoing webhook %s to endpoint %s failed for good (%s).", delivery.pk, endpoint.pk, error)
    _count_endpoint_failure(endpoint)
    return delivery


def resend_deliveries(*, delivery_ids: list[int]) -> list[int]:
    """New pending copies of these deliveries (same event id: receivers deduplicate), queued;
    their ids. A disabled endpoint is enabled again: staff asked for it."""
    originals = list(WebhookDelivery.objects.filter(pk__in=delivery_ids).select_related("endpoint"))
    endpoint_ids = {delivery.endpoint_id for delivery in originals}
    WebhookEndpoint.objects.filter(pk__in=endpoint_ids, is_active=False).update(
        is_active=True, consecutive_failures=0, disabled_reason=""
    )
    forget_subscriptions()
    copies = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(endpoint_id=d.endpoint_id, event_id=d.event_id, event=d.event, body=d.body) for d in originals
    )
    for copy in copies:
        enqueue(DELIVER, copy.pk)
    return [copy.pk for copy in copies]


def _finish(delivery: WebhookDelivery, status: str, *, response_status: int | None = None, error: str = "") -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=status, response_status=response_status, error=error[:255]
    )
    delivery.status, delivery.response_status, delivery.error = status, response_status, error[:255]


def _count_endpoint_failure(endpoint: WebhookEndpoint) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=F("consecutive_failures") + 1)
    limit = settings.OUTGOING_WEBHOOK_DISABLE_AFTER
    reason = f"Disabled after {limit} failed deliveries in a row."
    disabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, is_active=True, consecutive_failures__gte=limit).update(
        is_active=False, disabled_reason=reason
    )
    if disabled:
        forget_subscriptions()
        logger.error("Outgoing webhook endpoint %s disabled: %s", endpoint.pk, reason)
        mail_admins(
            f"Outgoing webhook {endpoint.name!r} disabled",
            f"{reason}\nSee the delivery log in the admin; resending a delivery enables the endpoint again.",
            fail_silently=True,
        )
