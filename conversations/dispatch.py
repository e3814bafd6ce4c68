"""Ring the doorbell: enqueue a Celery task by name, now or once the current transaction commits.

The database is the source of truth. If the broker is down the publish fails fast, is logged
and forgotten: a periodic sweep finds the work still waiting in the database and enqueues it
again. Tasks are looked up by name so services never import the task layer above them.

In a Celery worker whose pool runs tasks in its own process (gevent, threads), work the worker
enqueues for itself can skip the broker: a runner registered by conversations/bootsteps.py
takes it into the pool directly (`run_here`). The database stays the source of truth there
too: what such a run leaves undone, the sweep finds as it finds a lost task's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError

from telemetry import context

logger = logging.getLogger(__name__)

RECORD_INBOUND = "conversations.tasks.record_inbound_message"
PROCESS_INBOUND = "conversations.tasks.process_inbound_message"
SEND_OUTBOUND = "conversations.tasks.send_outbound_message"


# (task name, args, countdown, request id) -> True when the work was taken in this process.
Runner = Callable[[str, tuple[Any, ...], float | None, str], bool]

_runner: Runner | None = None


def run_here(runner: Runner | None) -> None:
    """Called by the worker when its pool starts (None when it stops): `enqueue` offers the
    runner each task first and publishes only what it declines."""
    global _runner
    _runner = runner


def enqueue(task_name: str, *args: Any, countdown: float | None = None, request_id: str = "", retries: int = 0) -> bool:
    """Publish one task now (or hand it to this worker's pool, see `run_here`); False (logged)
    when the broker is unavailable. `request_id`: the request that caused it, when it is not the
    one being served (the recorder's batches). `retries`: the task's retries so far."""
    if _runner is not None and not retries and _runner(task_name, args, countdown, request_id):
        return True
    task = current_app.tasks[task_name]
    options: dict[str, Any] = {"headers": {context.TASK_HEADER: request_id}} if request_id else {}
    if retries:
        options["retries"] = retries
    try:
        if countdown is None:
            task.apply_async(args=args, **options)
        else:
            task.apply_async(args=args, countdown=countdown, **options)
    except (OperationalError, OSError) as exc:
        logger.warning("Broker unavailable (%s); %s%r waits for its sweep.", exc, task_name.rsplit(".", 1)[-1], args)
        return False
    return True


def enqueue_after_commit(task_name: str, *args: Any, countdown: float | None = None, request_id: str = "") -> None:
    """Publish one task once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(partial(enqueue, task_name, *args, countdown=countdown, request_id=request_id))


def queue_names() -> list[str]:
    """Every queue tasks are published to: the default one and any a route names."""
    routed = {route.get("queue") for route in (getattr(settings, "CELERY_TASK_ROUTES", None) or {}).values()}
    return sorted({getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery"), *filter(None, routed)})


def queue_depths(queues: Iterable[str]) -> dict[str, int] | None:
    """Tasks waiting in each broker queue (Redis); None when the broker is not Redis or does not
    answer within a second."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis  # here: only the sweep and a metrics scrape need it

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return {queue: client.llen(queue) for queue in queues}
    except redis.RedisError as exc:
        logger.warning("Queue depths not read: broker unavailable (%s).", type(exc).__name__)
        return None
    finally:
        client.close()
