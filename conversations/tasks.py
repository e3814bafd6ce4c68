"""Celery tasks: thin. An id in, one service call, retries as the service asks."""

from __future__ import annotations

from celery import shared_task

from conversations.services.outbound import send_message
from conversations.services.replies import reply_to_message
from conversations.services.retries import RetryLater
from conversations.services.staff import hand_back_idle_conversations as hand_back_idle
from conversations.services.sweep import requeue_stalled_messages as sweep


# acks_late is safe here: both services are idempotent by their conditional updates.
@shared_task(bind=True, acks_late=True, max_retries=None)
def process_inbound_message(self, message_id: int) -> None:
    try:
        reply_to_message(message_id=message_id, attempt=self.request.retries + 1)
    except RetryLater as exc:
        raise self.retry(countdown=exc.countdown) from exc


@shared_task(bind=True, acks_late=True, max_retries=None)
def send_outbound_message(self, message_id: int) -> None:
    try:
        send_message(message_id=message_id)
    except RetryLater as exc:
        raise self.retry(countdown=exc.countdown) from exc


@shared_task
def requeue_stalled_messages() -> dict[str, int]:
    return sweep()


@shared_task
def hand_back_idle_conversations() -> int:
    return hand_back_idle()
