"""The safety net under the broker: whatever a lost task or a dead worker left behind is found in
the database. Every worker runs it at start and every SWEEP_INTERVAL_SECONDS (bootsteps.py).

Re-enqueued work is harmless twice over: each task starts with a conditional claim, and a part
of a reply goes to the provider only through its own attempted marker (services/outbound.py).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, Q, QuerySet
from django.utils import timezone

from conversations import notify
from conversations.dispatch import PROCESS_INBOUND, SEND_OUTBOUND, enqueue, queue_depths, queue_names
from conversations.models import Message
from conversations.services.inbound import record_pending_inbound
from conversations.services.parts import parts_in_doubt
from conversations.services.workers import forget_silent_workers, is_orphaned

logger = logging.getLogger(__name__)

S = Message.Status
_BATCH = 1000
INTERRUPTED = "The send was interrupted; its outcome is being checked"
# After a broker (re)connection: what waits longer than this is re-enqueued. Not 0: another
# worker's sweep that just re-enqueued a row has touched it, and is not repeated.
_JUST_QUEUED = 2.0


def run_sweeps(stop: threading.Event, *, after: threading.Event, wake: threading.Event) -> None:
    """Sweep every SWEEP_INTERVAL_SECONDS until `stop` is set, outliving database outages.

    The first sweep waits for `after` (this worker's first heartbeat), so the claims of this
    worker's previous run are seen as orphans and taken back at its start. `wake` (the broker
    connected again) sweeps at once and re-enqueues whatever waits, however briefly: the tasks
    the broker held may be gone.
    """
    after.wait(settings.WORKER_HEARTBEAT_STALE_SECONDS)
    sweeps, failing = 0, False
    while not stop.is_set():
        reconnected = wake.is_set()
        wake.clear()
        try:
            if not sweeps:
                forget_silent_workers()
            # At a worker's start its predecessor may have taken tasks with it: trust no queue.
            requeue_stalled_messages(
                requeue_after=_JUST_QUEUED if reconnected else None, trust_broker=bool(sweeps) and not reconnected
            )
            sweeps, failing = sweeps + 1, False
        except Exception as exc:
            if not failing:
                logger.warning("Sweep failed (%s); trying again every %s s.", exc, settings.SWEEP_INTERVAL_SECONDS)
            failing = True
        finally:
            connection.close_if_unusable_or_obsolete()
        wake.wait(settings.SWEEP_INTERVAL_SECONDS)


def requeue_stalled_messages(*, requeue_after: float | None = None, trust_broker: bool = False) -> dict[str, int]:
    """Record waiting deliveries, take back orphaned claims and re-enqueue what waits too long.

    `processing` and `sending` claims of a worker that is gone go back to `received` and
    `pending`, except a send with a part that may have reached the provider: that one becomes
    `unknown` (services/unknown.py settles it), never re-sent blindly. Received messages and
    pending sends idle for `requeue_after` seconds (SWEEP_REQUEUE_AFTER_SECONDS) get a new task.

    `trust_broker` (the periodic sweep): while tasks wait in the broker (a surge beyond what the
    workers answer at once), a message idle that long is most likely waiting its turn there, not
    lost, and is re-enqueued only after SWEEP_STALE_AFTER_SECONDS. Otherwise every sweep of a long surge
    would queue another copy of each waiting task (1,000 a sweep at 200 webhooks/s), each copy
    costing a worker a task's run to find its message already claimed.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.SWEEP_REQUEUE_AFTER_SECONDS if requeue_after is None else requeue_after)
    turn_cutoff = cutoff
    depths = queue_depths(queue_names()) if trust_broker else None
    if depths and any(depths.values()):
        turn_cutoff = min(cutoff, now - timedelta(seconds=settings.SWEEP_STALE_AFTER_SECONDS))
    orphaned = is_orphaned(now)
    in_doubt = Exists(parts_in_doubt())
    # Longer than any provider call takes: had the call ended, its outcome would be recorded.
    call_is_over = Exists(
        parts_in_doubt(attempted_before=now - timedelta(seconds=settings.UNKNOWN_LOOKUP_AFTER_SECONDS))
    )
    sending = Message.objects.filter(status=S.SENDING)
    unclaimed = {"claimed_by": "", "updated_at": now}

    # Recorded here, in the worker: their processing is enqueued like any new message's.
    accepted = record_pending_inbound(received_before=cutoff)
    unknown = _take(
        sending.filter(in_doubt).filter(orphaned | call_is_over),
        status=S.UNKNOWN,
        error_title=INTERRUPTED,
        **unclaimed,
    )
    for message_id in unknown:
        notify.message_status_changed(message_id=message_id)
    # Nothing of these is in flight: a send claimed but not attempted (its worker died, or a
    # database error cut it short) is safe to send again.
    released = _take(
        sending.exclude(in_doubt).filter(orphaned | Q(updated_at__lt=cutoff)), status=S.PENDING, **unclaimed
    )
    reclaimed = _take(Message.objects.filter(status=S.PROCESSING).filter(orphaned), status=S.RECEIVED, **unclaimed)
    inbound = reclaimed + _take(_waiting(S.RECEIVED, turn_cutoff), updated_at=now)
    outbound = released + _take(_waiting(S.PENDING, turn_cutoff), updated_at=now)
    enqueued = _enqueue(PROCESS_INBOUND, inbound) and _enqueue(SEND_OUTBOUND, outbound)

    counts = {"accepted": accepted, "inbound": len(inbound), "outbound": len(outbound), "unknown": len(unknown)}
    if any(counts.values()):
        logger.warning("Sweep found stalled work: %s%s", counts, "" if enqueued else " (broker down: enqueued later)")
    return counts


def _waiting(status: str, cutoff: datetime) -> QuerySet[Message]:
    """Rows in `status` untouched since `cutoff` whose retry, if one is planned, is overdue too."""
    return Message.objects.filter(status=status, updated_at__lt=cutoff).exclude(retry_at__gte=cutoff)


def _take(rows: QuerySet[Message], **changes: object) -> list[int]:
    """Apply `changes` to up to _BATCH of `rows` and return their ids. Rows another sweeper (of
    another worker) holds are skipped, and the change makes them not match again, so each row
    is taken by one sweeper only."""
    with transaction.atomic():
        ids = list(rows.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True)[:_BATCH])
        if ids:
            Message.objects.filter(pk__in=ids).update(**changes)
    return ids


def _enqueue(task_name: str, message_ids: list[int]) -> bool:
    """Publish a task per message; stop at the first refusal: the broker is down, and the rows
    still wait in the database for the next sweep."""
    return all(enqueue(task_name, message_id) for message_id in message_ids)
