"""Copies at a processor left without the row that held their id: what a reply in flight made
after its conversation was erased, and model answers stored at OpenAI but never kept as a reply.

Nothing here could delete them later (an erasure finds copies through rows), so they are handed
over now: the data officers' app, above this one, listens and queues their remote deletion.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

logger = logging.getLogger(__name__)

# The kinds, as gdpr.models.RemoteDeletion.Kind stores them.
OPENAI_RESPONSE = "openai_response"
TWILIO_MESSAGE = "twilio_message"

# Which providers keep a copy of every message sent (Meta keeps no message store to delete from).
_SENT_MESSAGE_COPIES = {"twilio": TWILIO_MESSAGE}

# Sent with `copies`: a list of (kind, remote id).
remote_copies_orphaned = Signal()


def hand_over_orphaned_copies(*, copies: list[tuple[str, str]]) -> None:
    """Have these processors' copies deleted: no row of ours names them any more."""
    copies = [(kind, remote_id) for kind, remote_id in copies if remote_id]
    if not copies:
        return
    logger.info("%s remote cop(ies) left without a row; queued for deletion: %s", len(copies), copies)
    for receiver, result in remote_copies_orphaned.send_robust(sender=None, copies=copies):
        if isinstance(result, Exception):  # e.g. the database is down: the caller's own error matters more
            logger.warning("Orphaned copies %s not queued by %s: %r", copies, receiver, result)


def hand_over_sent_message(*, provider: str, provider_message_id: str) -> None:
    """A message the provider took after its row was erased: delete the provider's copy."""
    if kind := _SENT_MESSAGE_COPIES.get(provider):
        hand_over_orphaned_copies(copies=[(kind, provider_message_id)])
