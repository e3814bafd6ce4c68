"""Celery tasks of the data officers' app: thin, an id in and one service call."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.conf import settings

from gdpr.remote import list_erasures_with_pending_deletions, run_remote_deletions
from gdpr.retention import purge_expired

logger = logging.getLogger(__name__)


# Twilio answers 20009 while a message is in flight: retry until the processor has deleted it.
# After the retries run out, the beat sweep below keeps trying.
@shared_task(bind=True, max_retries=100)
def delete_remote_copies(self: Task[[int | None], None], erasure_id: int | None) -> None:
    """The pending remote deletions of one erasure, or (None) those of retention and orphans."""
    if not run_remote_deletions(erasure_id=erasure_id):
        return
    if self.max_retries is not None and self.request.retries >= self.max_retries:
        logger.warning("Remote deletions of %s still pending; the beat sweep keeps retrying them.", erasure_id)
        return
    raise self.retry(countdown=settings.REMOTE_DELETION_RETRY_SECONDS)


@shared_task
def retry_pending_remote_deletions() -> int:
    pending = 0
    for erasure_id in list_erasures_with_pending_deletions():
        pending += run_remote_deletions(erasure_id=erasure_id)
    return pending


@shared_task
def purge_expired_data() -> dict[str, int]:
    summary = purge_expired().as_dict()
    return {name: value for name, value in summary.items() if isinstance(value, int)}
