"""Tell the staff live inbox that something changed: the one place services notify from.

Each call enqueues one event once the change is committed; a worker builds the event's JSON
and sends it to the page groups (channels_app/live.py). Building an event takes a few queries
and a channel-layer round trip, too slow for a webhook that must answer in milliseconds. If the
broker is down the event is dropped: pages catch up through the API when they reconnect.
"""

from __future__ import annotations

from conversations.dispatch import PUBLISH_LIVE_EVENT, enqueue_after_commit
from conversations.models import Message


def message_created(message: Message) -> None:
    """A message was stored (customer, bot, staff or internal note)."""
    enqueue_after_commit(PUBLISH_LIVE_EVENT, "message", message.pk, "message")


def message_status_changed(*, message_id: int | None = None, provider: str = "", provider_message_id: str = "") -> None:
    """An outbound message's delivery status moved (by id, or by the provider's id)."""
    enqueue_after_commit(PUBLISH_LIVE_EVENT, "status", message_id, provider, provider_message_id)


def conversation_changed(*, conversation_id: int) -> None:
    """Mode, holder, needs-human flag or read marker of a conversation changed."""
    enqueue_after_commit(PUBLISH_LIVE_EVENT, "conversations", [conversation_id])


def profile_changed(*, profile_id: int) -> None:
    """A client profile was edited (by staff or by extraction)."""
    enqueue_after_commit(PUBLISH_LIVE_EVENT, "profile", profile_id)
