"""Celery tasks: thin. An id in, one service call, retries as the service asks."""

from __future__ import annotations

from celery import Task, shared_task

from conversations.services.retries import RetryLater
from integrations.webhooks import deliver_webhook


@shared_task(bind=True, max_retries=None)
def deliver_outgoing_webhook(self: Task, delivery_id: int) -> None:
    try:
        deliver_webhook(delivery_id=delivery_id)
    except RetryLater as exc:
        raise self.retry(countdown=exc.countdown) from exc
