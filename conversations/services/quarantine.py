"""Staff decide about deliveries that could not be recorded (ProcessedMessage.quarantined_at):
try again (after a fix is deployed), or drop the stored message and keep only the dedup row."""

from __future__ import annotations

import logging

from django.contrib.auth.models import User
from django.db.models import QuerySet

from conversations.models import AuditEntry, ProcessedMessage
from conversations.services.inbound import record_accepted

logger = logging.getLogger(__name__)


def list_quarantined() -> QuerySet[ProcessedMessage]:
    return ProcessedMessage.objects.filter(quarantined_at__isnull=False, pending__isnull=False)


def retry_quarantined(*, processed_ids: list[int], actor: User | None) -> int:
    """Record the quarantined deliveries again, now, each with fresh attempts; the number recorded
    (one that fails again is quarantined again after its attempts)."""
    ids = list(list_quarantined().filter(pk__in=processed_ids).values_list("pk", flat=True))
    ProcessedMessage.objects.filter(pk__in=ids).update(quarantined_at=None, record_attempts=0, record_error="")
    recorded = sum(record_accepted(processed_id=processed_id) is not None for processed_id in ids)
    _audit(actor, "delivery.retried", ids, recorded=recorded)
    return recorded


def drop_quarantined(*, processed_ids: list[int], actor: User | None) -> int:
    """Delete the stored message of quarantined deliveries (personal data); the dedup row stays,
    so a retry of the same delivery is still ignored. The number dropped."""
    ids = list(list_quarantined().filter(pk__in=processed_ids).values_list("pk", flat=True))
    dropped = ProcessedMessage.objects.filter(pk__in=ids).update(pending=None)
    _audit(actor, "delivery.dropped", ids, dropped=dropped)
    logger.warning("Staff dropped %s quarantined deliveries: %s.", dropped, ids)
    return dropped


def _audit(actor: User | None, action: str, ids: list[int], **detail: int) -> None:
    if ids:
        AuditEntry.objects.create(actor=actor, action=action, detail={"processed_ids": ids, **detail})
