"""The worker-side recorder: stores the messages webhooks accepted, woken by PostgreSQL NOTIFY.

A trigger on the ProcessedMessage table NOTIFYs `whatsbot_accepted` when a webhook's INSERT
commits (migration 0008), so the webhook pays for no broker publish. Every Celery worker runs
this loop in a thread (conversations/bootsteps.py): drain what is waiting, then wait for the
next notification, or INBOUND_RECORDER_POLL_SECONDS in case one was missed. Recorders of
several workers share the work: a row one of them has locked, the others skip.

Woken, the recorder first lets INBOUND_RECORDER_GATHER_SECONDS pass: a batch costs a few
statements whatever its size, so messages arriving a few dozen milliseconds apart are recorded
together instead of paying for a batch each (bench/RESULTS.md, "End to end").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection

from conversations.services.inbound import RECORD_BATCH, record_pending_inbound

logger = logging.getLogger(__name__)

CHANNEL = "whatsbot_accepted"


def run_recorder(*, stop: threading.Event) -> None:
    """Record accepted deliveries until `stop` is set; survives database restarts."""
    while not stop.is_set():
        try:
            with _notifications() as wait:
                while not stop.is_set():
                    # A batch short of RECORD_BATCH took all there was: what arrived since has
                    # notified, and the wait returns at once.
                    while record_pending_inbound(limit=RECORD_BATCH) == RECORD_BATCH and not stop.is_set():
                        pass
                    if wait(settings.INBOUND_RECORDER_POLL_SECONDS):
                        stop.wait(settings.INBOUND_RECORDER_GATHER_SECONDS)
                    wait(0)  # the notifications of what the next batch takes anyway
        except Exception as exc:
            # Django's connection raises Django's errors, the LISTEN connection psycopg's own
            # (a PostgreSQL restart): whatever it was, the thread must live on.
            logger.warning("Inbound recorder stopped (%s); starting again in a second.", exc)
            stop.wait(1)
        finally:
            connection.close()


@contextmanager
def _notifications() -> Iterator[Callable[[float], bool]]:
    """A wait(seconds) that returns early, True, on a NOTIFY (wait(0) takes those already
    there), on its own autocommit connection: what arrives while the recorder works on its
    Django connection waits there, not lost."""
    listener = connection.get_new_connection(connection.get_connection_params())
    try:
        listener.autocommit = True
        listener.execute(f"LISTEN {CHANNEL}")

        def wait(seconds: float) -> bool:
            return bool(list(listener.notifies(timeout=seconds, stop_after=None if seconds == 0 else 1)))

        yield wait
    finally:
        listener.close()
