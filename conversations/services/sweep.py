"""The safety net under the broker: whatever a lost task left behind is found in the database."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from conversations.dispatch import PROCESS_INBOUND, SEND_OUTBOUND, enqueue_after_commit
from conversations.models import Message
from conversations.services.inbound import record_pending_inbound

logger = logging.getLogger(__name__)

S = Message.Status


def requeue_stalled_messages() -> dict[str, int]:
    """Record accepted messages and re-enqueue inbound messages and sends idle for longer than
    SWEEP_STALE_AFTER_SECONDS; mark sends stuck in `sending` (their worker died mid-call) as
    `unknown`, never re-sent."""
    cutoff = timezone.now() - timedelta(seconds=settings.SWEEP_STALE_AFTER_SECONDS)
    # Recorded here, in the worker: their processing is enqueued like any new message's.
    accepted = record_pending_inbound(received_before=cutoff)
    stale = Message.objects.filter(updated_at__lt=cutoff)
    inbound_ids = list(stale.filter(status__in=[S.RECEIVED, S.PROCESSING]).values_list("id", flat=True)[:1000])
    outbound_ids = list(stale.filter(status=S.PENDING).values_list("id", flat=True)[:1000])
    for message_id in inbound_ids:
        enqueue_after_commit(PROCESS_INBOUND, message_id)
    for message_id in outbound_ids:
        enqueue_after_commit(SEND_OUTBOUND, message_id)
    orphaned = stale.filter(status=S.SENDING).update(
        status=S.UNKNOWN, error_title="Worker stopped during the send", updated_at=timezone.now()
    )
    counts = {"accepted": accepted, "inbound": len(inbound_ids), "outbound": len(outbound_ids), "unknown": orphaned}
    if any(counts.values()):
        logger.warning("Sweep re-enqueued stalled work: %s", counts)
    return counts
