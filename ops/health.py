"""Readiness: can this deployment take a customer's message and answer it now?

Each check is named, says why it failed, and is cheap (one query or one connection): monitors
and load balancers call it every few seconds. The thresholds are settings (README, Running in
production). Nothing down makes it hang: the database connection has its connect timeout
(DATABASE_CONNECT_TIMEOUT), its queries a statement timeout, the broker a socket timeout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone
from kombu import Connection

from conversations.models import Message, ProcessedMessage, WorkerHeartbeat

_UNANSWERED = [Message.Status.RECEIVED, Message.Status.PROCESSING]
# A check's query waiting longer than this (a locked table, an overloaded server) fails it.
QUERY_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        connection.close()  # the next check (or request) starts on a fresh connection
        return Check("database", False, f"unreachable ({type(exc).__name__})")
    return Check("database", True, connection.vendor)


def check_broker() -> Check:
    url = settings.CELERY_BROKER_URL
    if url.startswith("memory://"):
        return Check("broker", True, "in-memory (one process)")
    try:
        if url.startswith(("redis://", "rediss://")):
            import redis  # here: every process loads this module, few ask for readiness

            client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
            try:
                client.ping()
            finally:
                client.close()
        else:
            with Connection(url, connect_timeout=1) as broker:
                broker.ensure_connection(max_retries=1, timeout=1)
    except Exception as exc:
        return Check("broker", False, f"unreachable ({type(exc).__name__})")
    return Check("broker", True, "reachable")


def check_worker(now: datetime) -> Check:
    latest = WorkerHeartbeat.objects.aggregate(at=Max("beat_at"))["at"]
    if latest is None:
        return Check("worker", False, "no worker heartbeat yet")
    age = (now - latest).total_seconds()
    limit = settings.READY_WORKER_HEARTBEAT_SECONDS
    return Check("worker", age <= limit, f"last heartbeat {age:.0f} s ago (limit {limit:.0f} s)")


def check_recording(now: datetime) -> Check:
    oldest = ProcessedMessage.objects.filter(pending__isnull=False, quarantined_at__isnull=True).aggregate(
        at=Min("received_at")
    )["at"]
    return _age_check(
        "recording", "accepted delivery waiting to be recorded", oldest, now, settings.READY_RECORDING_SECONDS
    )


def check_replies(now: datetime) -> Check:
    oldest = Message.objects.filter(
        direction=Message.Direction.INBOUND, author=Message.Author.CUSTOMER, status__in=_UNANSWERED
    ).aggregate(at=Min("created_at"))["at"]
    return _age_check("replies", "customer message waiting for an answer", oldest, now, settings.READY_REPLY_SECONDS)


def _age_check(name: str, what: str, oldest: datetime | None, now: datetime, limit: float) -> Check:
    if oldest is None:
        return Check(name, True, f"no {what}")
    age = (now - oldest).total_seconds()
    return Check(name, age <= limit, f"oldest {what}: {age:.0f} s (limit {limit:.0f} s)")


def check_readiness() -> list[Check]:
    """Every check, in order; the database ones are skipped (failed) when it is unreachable."""
    database = check_database()
    checks = [database, check_broker()]
    if not database.ok:
        return checks + [Check(name, False, "database unreachable") for name in ("worker", "recording", "replies")]
    now = timezone.now()
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL statement_timeout = {QUERY_TIMEOUT_MS}")
            checks += [check_worker(now), check_recording(now), check_replies(now)]
    except Exception as exc:  # the database went away between the checks, or did not answer in time
        connection.close()
        checks.append(Check("database", False, f"failed during the checks ({type(exc).__name__})"))
    return checks


def readiness_report(checks: list[Check]) -> dict:
    return {"status": "ok" if all(check.ok for check in checks) else "fail", "checks": [asdict(c) for c in checks]}
