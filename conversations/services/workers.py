"""Which worker holds a claim, and whether it still lives: heartbeats in the database.

A worker's bootstep (conversations/bootsteps.py) names the process after the Celery node and
writes its heartbeat every WORKER_HEARTBEAT_SECONDS. Claims (`processing`, `sending`) carry that
name, so the sweep takes back the claims of a worker that stopped beating, or that started again
since it claimed (a restart is seen at once), within seconds of its death instead of after a
fixed age that must outlast the slowest model call.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from conversations.models import WorkerHeartbeat

logger = logging.getLogger(__name__)

_current = ""


def name_this_worker(name: str) -> None:
    """Claims made by this process from now on carry `name` (the Celery node name)."""
    global _current
    _current = name


def current_worker() -> str:
    """The name claims of this process carry; empty outside a worker (eager tasks, the web)."""
    return _current


def beat(*, name: str, started_at: datetime) -> None:
    """Record that worker `name`, running since `started_at`, is alive now."""
    now = timezone.now()
    updated = WorkerHeartbeat.objects.filter(name=name).update(started_at=started_at, beat_at=now)
    if not updated:
        WorkerHeartbeat.objects.get_or_create(name=name, defaults={"started_at": started_at, "beat_at": now})


def run_heartbeat(stop: threading.Event, *, name: str, started_at: datetime, first_beat: threading.Event) -> None:
    """Beat until `stop` is set; a database outage is logged once and outlived."""
    failing = False
    while not stop.is_set():
        try:
            beat(name=name, started_at=started_at)
            if failing:
                logger.info("Worker heartbeat of %s written again.", name)
            failing = False
            first_beat.set()
        except Exception as exc:
            if not failing:
                logger.warning("Worker heartbeat of %s failed (%s); retrying.", name, exc)
            failing = True
        finally:
            connection.close_if_unusable_or_obsolete()
        stop.wait(settings.WORKER_HEARTBEAT_SECONDS)


def is_orphaned(now: datetime) -> Q:
    """Claims nobody works on any more: their worker stopped beating or started again since the
    claim, or (a claim made outside a worker, or one a live worker lost track of) the claim is
    older than SWEEP_STALE_AFTER_SECONDS. Apply to Message rows in a claimed status."""
    heartbeats = WorkerHeartbeat.objects.filter(name=OuterRef("claimed_by"))
    alive = heartbeats.filter(
        started_at__lte=OuterRef("updated_at"),
        beat_at__gte=now - timedelta(seconds=settings.WORKER_HEARTBEAT_STALE_SECONDS),
    )
    restarted = heartbeats.filter(started_at__gt=OuterRef("updated_at"))
    # A worker's first heartbeat may follow its first claims by a moment: a claim with no
    # heartbeat row at all counts as orphaned only once a heartbeat would have been stale.
    silent = Q(updated_at__lt=now - timedelta(seconds=settings.WORKER_HEARTBEAT_STALE_SECONDS))
    named_and_gone = ~Q(claimed_by="") & ~Exists(alive) & (Exists(restarted) | silent)
    return named_and_gone | Q(updated_at__lt=now - timedelta(seconds=settings.SWEEP_STALE_AFTER_SECONDS))


def forget_silent_workers(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete heartbeats of workers gone for long (renamed containers); the number deleted."""
    deleted, _ = WorkerHeartbeat.objects.filter(beat_at__lt=timezone.now() - older_than).delete()
    return deleted
