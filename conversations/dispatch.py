"""Ring the doorbell: enqueue a task for a message once the transaction that stored it commits.

The database is the source of truth. If the broker is down the publish fails fast, is logged
and forgotten: the periodic sweep finds the message still waiting and enqueues it again.
Tasks are looked up by name so services never import the task layer above them.
"""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)

RECORD_INBOUND = "conversations.tasks.record_inbound_message"
PROCESS_INBOUND = "conversations.tasks.process_inbound_message"
SEND_OUTBOUND = "conversations.tasks.send_outbound_message"
EXTRACT_PROFILE = "profiles.tasks.extract_client_profile"


def enqueue_after_commit(task_name: str, message_id: int, *, countdown: float | None = None) -> None:
    def publish() -> None:
        try:
            current_app.tasks[task_name].apply_async(args=[message_id], countdown=countdown)
        except (OperationalError, OSError) as exc:
            logger.warning("Broker unavailable (%s); message %s waits for the sweep.", exc, message_id)

    transaction.on_commit(publish)
