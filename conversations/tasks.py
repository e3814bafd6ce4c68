"""Celery tasks: thin. An id in, one service call, retries as the service asks."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.exceptions import ObjectDoesNotExist

from conversations.dispatch import PROCESS_INBOUND, enqueue
from conversations.services.captures import purge_expired_captures as purge_captures
from conversations.services.inbound import record_accepted
from conversations.services.outbound import send_message
from conversations.services.replies import reply_to_message
from conversations.services.retries import RetryLater
from conversations.services.staff import hand_back_idle_conversations as hand_back_idle
from conversations.services.unknown import resolve_unknown_sends as resolve_unknown

logger = logging.getLogger(__name__)


# acks_late is safe on these three: their services are idempotent (row lock and conditional updates).
@shared_task(acks_late=True)
def record_inbound_message(processed_id: int) -> None:
    record_accepted(processed_id=processed_id)


@shared_task(bind=True, acks_late=True, max_retries=None)
def process_inbound_message(self, message_id: int) -> None:
    try:
        _answer(message_id, attempt=self.request.retries + 1)
    except RetryLater as exc:
        raise self.retry(countdown=exc.countdown) from exc


def process_inbound_message_here(message_id: int) -> None:
    """process_inbound_message run in the worker's pool without the broker (bootsteps.LocalRuns):
    its first attempt; a retry the model asks for goes through the broker, as the task's would
    (if the broker is down, the message waits `received` for the sweep)."""
    try:
        _answer(message_id, attempt=1)
    except RetryLater as exc:
        enqueue(PROCESS_INBOUND, message_id, countdown=exc.countdown, retries=1)


def _answer(message_id: int, *, attempt: int) -> None:
    try:
        reply_to_message(message_id=message_id, attempt=attempt)
    except ObjectDoesNotExist as exc:
        # Erased (GDPR) while the task waited or ran: there is no one left to answer. What was
        # missing (ids and model names only) tells an erasure from a row that should be there.
        logger.info("Message %s or its conversation is gone (%s); reply abandoned.", message_id, exc)


@shared_task(bind=True, acks_late=True, max_retries=None)
def send_outbound_message(self, message_id: int) -> None:
    try:
        send_message(message_id=message_id)
    except RetryLater as exc:
        raise self.retry(countdown=exc.countdown) from exc
    except ObjectDoesNotExist:
        logger.info("Message %s is gone (erased); nothing to send.", message_id)


@shared_task
def resolve_unknown_sends() -> dict[str, int]:
    return resolve_unknown()


@shared_task
def purge_expired_captures() -> int:
    return purge_captures()


@shared_task
def hand_back_idle_conversations() -> int:
    return hand_back_idle()
