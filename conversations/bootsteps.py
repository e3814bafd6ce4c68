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
