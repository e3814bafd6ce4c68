"""Celery worker bootsteps. Imported by the Celery app before Django is set up: no models here."""

from __future__ import annotations

import threading

from celery import bootsteps


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
