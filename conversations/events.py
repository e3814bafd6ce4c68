"""Tell the business's other systems what happened: the one place services emit events from.

Events are the outgoing webhooks' subjects (conversation created or resolved, message received,
sent or failed, a person needed, takeover and hand-back, contact erased). Each is handed, once
its transaction commits, to the sink the integrations app registers at start-up (so this module
imports nothing above it); without one (or with no endpoint subscribed) it costs nothing more.
The data are ids and states, never a message's text or a number: receivers read content through
the API with a token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from django.db import transaction

logger = logging.getLogger(__name__)

CONVERSATION_CREATED = "conversation.created"
CONVERSATION_RESOLVED = "conversation.resolved"
MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
MESSAGE_FAILED = "message.failed"
NEEDS_HUMAN = "conversation.needs_human"
TAKEN_OVER = "conversation.taken_over"
HANDED_BACK = "conversation.handed_back"
CONTACT_ERASED = "contact.erased"
ALL = (
    CONVERSATION_CREATED,
    CONVERSATION_RESOLVED,
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    MESSAGE_FAILED,
    NEEDS_HUMAN,
    TAKEN_OVER,
    HANDED_BACK,
    CONTACT_ERASED,
)

Sink = Callable[[str, dict], object]

_sink: Sink | None = None


def set_sink(sink: Sink | None) -> None:
    """Called once by the integrations app (integrations/apps.py) when Django starts."""
    global _sink
    _sink = sink


def emit(event: str, **data: object) -> None:
    """Hand `event` with its `data` (JSON-ready ids and states) to the sink after commit."""
    if _sink is not None:
        transaction.on_commit(partial(_hand_over, _sink, event, data))


def _hand_over(sink: Sink, event: str, data: dict) -> None:
    try:
        sink(event, data)
    except Exception:  # an event must never undo or fail the state change it reports
        logger.warning("Event %s could not be queued for the outgoing webhooks.", event, exc_info=True)
