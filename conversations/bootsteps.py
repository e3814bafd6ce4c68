"""Celery worker bootsteps. Imported by the Celery app before Django is set up: no models here."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from celery import bootsteps

logger = logging.getLogger(__name__)


class InboundRecorder(bootsteps.StartStopStep):
    """Runs the inbound recorder (services/recorder.py) in a thread of every worker, when the
    webhooks rely on it: PostgreSQL with INBOUND_NOTIFY on."""

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, worker) -> None:
        from conversations.services.inbound import recorder_is_notified
        from conversations.services.recorder import run_recorder

        if recorder_is_notified():
            self.thread = threading.Thread(
                target=run_recorder, kwargs={"stop": self.stop_event}, name="inbound-recorder"
            )
            self.thread.daemon = True
            self.thread.start()

    def stop(self, worker) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=10)


# Set each time the worker (re)connects to the broker; wakes the sweep (Recovery).
broker_connected = threading.Event()


class BrokerConnected(bootsteps.StartStopStep):
    """A consumer step, started at every (re)connection to the broker. What the broker held may
    be gone (a Redis restart without persistence; a dead worker's unacknowledged tasks): the
    sweep re-enqueues whatever waits in the database at once, not after its usual threshold."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c) -> None:
        broker_connected.set()


class Recovery(bootsteps.StartStopStep):
    """Two threads of every worker: its heartbeat (services/workers.py) and the sweep
    (services/sweep.py), at start, at every broker (re)connection and every
    SWEEP_INTERVAL_SECONDS. In the worker, not in beat: recovery must not wait for beat, nor
    for the broker it recovers from. Apart, so a slow sweep never delays a heartbeat."""

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        from conversations.services.workers import name_this_worker

        # Named before any step starts (Django is set up by now), so every claim carries it.
        self.name = worker.hostname
        self.started_at = worker.startup_time
        name_this_worker(self.name)
        self.stop_event = threading.Event()
        self.first_beat = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, worker) -> None:
        from conversations.services.sweep import run_sweeps
        from conversations.services.workers import run_heartbeat

        heartbeat = threading.Thread(
            target=run_heartbeat,
            args=(self.stop_event,),
            kwargs={"name": self.name, "started_at": self.started_at, "first_beat": self.first_beat},
            name="worker-heartbeat",
            daemon=True,
        )
        sweeper = threading.Thread(
            target=run_sweeps,
            args=(self.stop_event,),
            kwargs={"after": self.first_beat, "wake": broker_connected},
            name="sweep",
            daemon=True,
        )
        self.threads = [heartbeat, sweeper]
        for thread in self.threads:
            thread.start()

    def stop(self, worker) -> None:
        self.stop_event.set()
        broker_connected.set()  # wakes the sweeper to see the stop
        for thread in self.threads:
            thread.join(timeout=10)


class LocalRuns(bootsteps.StartStopStep):
    """The customer messages this worker records are answered in its own pool: the reply work is
    not published to the broker to be consumed back by the same worker (kombu's publish and
    Celery's consume cost ~2 ms of CPU per message, bench/RESULTS.md "End to end"). Only for
    pools that run tasks in this process (gevent, threads), and only while the pool has a free
    slot: beyond that, and for every other task, `dispatch.enqueue` publishes as before.

    Nothing is lost with the broker left out: the message is committed `received` before it is
    handed over, so a run that never starts or ends (the worker killed, a timer cleared at
    shutdown) leaves a row the sweep re-enqueues, as it does a lost task's."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.pool: Any = None
        self.timer: Any = None
        self.slots = threading.Semaphore(0)
        self.functions: dict[str, Any] = {}

    def start(self, worker) -> None:
        from celery.concurrency import gevent, thread

        from conversations import dispatch, tasks

        if not isinstance(worker.pool, gevent.TaskPool | thread.TaskPool):
            return  # prefork runs tasks in other processes; solo would run them in the recorder
        self.pool, self.timer = worker.pool, worker.timer
        self.slots = threading.Semaphore(worker.pool.num_processes)
        self.functions = {dispatch.PROCESS_INBOUND: tasks.process_inbound_message_here}
        dispatch.run_here(self.take)

    def stop(self, worker) -> None:
        from conversations import dispatch

        dispatch.run_here(None)

    def take(self, task_name: str, args: tuple[Any, ...], countdown: float | None, request_id: str) -> bool:
        """Start (after `countdown`) the task's work in the pool; False when it is not one run
        here or no slot is free (then it is published)."""
        function = self.functions.get(task_name)
        if function is None or not self._has_free_slot() or not self.slots.acquire(blocking=False):
            return False
        if countdown:
            self.timer.call_after(countdown, self._apply, (function, args, request_id))
        else:
            self._apply(function, args, request_id)
        return True

    def _has_free_slot(self) -> bool:
        # gevent's pool would make the caller (the recorder) wait for a slot the consumer's tasks
        # hold; a thread pool queues instead, bounded by `slots`.
        green = getattr(self.pool, "_pool", None)
        return green is None or green.free_count() > 0

    def _apply(self, function: Any, args: tuple[Any, ...], request_id: str) -> None:
        try:
            self.pool.apply_async(self._run, (function, args, request_id), callback=_ignore)
        except Exception:  # the pool is stopping: the row waits for the sweep
            self.slots.release()
            logger.warning("Worker pool unavailable; %s%r waits for the sweep.", function.__name__, args)

    def _run(self, function: Any, args: tuple[Any, ...], request_id: str) -> None:
        from django.db import close_old_connections

        from telemetry import context

        # An id of its own, as the task it stands for would have: its log lines stay one unit.
        tokens = context.enter(request=request_id, task=uuid.uuid4().hex)
        try:
            close_old_connections()  # as around a task (whatsbot_project/celery.py)
            function(*args)
        except Exception:
            logger.exception("%s%r failed; the sweep takes it up again.", function.__name__, args)
        finally:
            close_old_connections()
            context.leave(tokens)
            self.slots.release()


def _ignore(result: object) -> None:
    pass
