"""The one place services notify the live inbox from, always after their transaction commits.

Groups: `inbox` (every staff page: conversation rows, mode and holder changes) and
`conversation.<id>` (pages that have that conversation open: its messages, statuses, profile).
Events carry the same JSON the inbox API returns, so the page renders both the same way.
A notification that fails is logged and dropped: the page catches up through the API.
"""

from __future__ import annotations

import logging
from functools import partial

from asgiref.sync import async_to_sync
from celery import current_app
from channels.layers import get_channel_layer
from django.db import transaction
from kombu.exceptions import OperationalError

from conversations.inbox_selectors import list_conversations_for_inbox
from conversations.models import Conversation, Message
from conversations.payloads import ConversationPayload, MessagePayload, ProfilePayload
from profiles.models import ClientProfile

logger = logging.getLogger(__name__)

INBOX_GROUP = "inbox"


def conversation_group(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"


def staff_group(user_id: int) -> str:
    return f"staff.{user_id}"


def message_created(message: Message) -> None:
    """A message was stored (customer, bot, staff or internal note)."""
    _publish_after_commit("message", message.pk, "message")


def message_status_changed(*, message_id: int | None = None, provider: str = "", provider_message_id: str = "") -> None:
    """An outbound message's delivery status moved (by id, or by the provider's id)."""
    _publish_after_commit("status", message_id, provider, provider_message_id)


def conversation_changed(*, conversation_id: int) -> None:
    """Mode, holder, needs-human flag or read marker of a conversation changed."""
    _publish_after_commit("conversations", [conversation_id])


def profile_changed(*, profile_id: int) -> None:
    """A client profile was edited (by staff or by extraction)."""
    _publish_after_commit("profile", profile_id)


PUBLISH_TASK = "channels_app.tasks.publish_live_event"


def _publish_after_commit(event: str, *args) -> None:
    """Hand the event to a worker once the change is committed.

    Building an event takes a few queries and a channel-layer round trip: too slow for a
    webhook that must answer in milliseconds, so a Celery task does it. If the broker is down
    the event is dropped; pages catch up through the API when they reconnect.
    """

    def enqueue() -> None:
        try:
            current_app.tasks[PUBLISH_TASK].apply_async(args=[event, *args])
        except (OperationalError, OSError) as exc:
            logger.warning("Live inbox event %s dropped, broker unavailable: %s", event, exc)

    transaction.on_commit(enqueue)


def publish(event: str, *args) -> None:
    """Build and send one live-inbox event (run by the worker)."""
    {
        "message": _publish_message,
        "status": _publish_status,
        "conversations": _publish_conversations,
        "profile": _publish_profile,
    }[event](*args)


def staff_access_revoked(*, user_id: int) -> None:
    """Close every live-inbox socket of a user who is no longer active staff."""
    transaction.on_commit(partial(_send, [(staff_group(user_id), {"type": "live.revoke"})]))


def _publish_message(message_id: int, event_type: str) -> None:
    message = Message.objects.select_related("staff_user").filter(pk=message_id).first()
    if message is None:
        return
    event = {"type": event_type, "message": dict(MessagePayload(message).data)}
    _send([(conversation_group(message.conversation_id), _live(event)), *_conversation_rows([message.conversation_id])])


def _publish_status(message_id: int | None, provider: str, provider_message_id: str) -> None:
    messages = Message.objects.select_related("staff_user")
    if message_id is not None:
        message = messages.filter(pk=message_id).first()
    else:
        message = messages.filter(provider=provider, provider_message_id=provider_message_id).first()
    if message is not None:
        _publish_message(message.pk, "status")


def _publish_conversations(conversation_ids: list[int]) -> None:
    _send(_conversation_rows(conversation_ids))


def _publish_profile(profile_id: int) -> None:
    profile = ClientProfile.objects.filter(pk=profile_id).first()
    if profile is None:
        return
    event = _live({"type": "profile", "profile": dict(ProfilePayload(profile).data)})
    conversation_ids = list(Conversation.objects.filter(profile_id=profile_id).values_list("id", flat=True))
    _send([*((conversation_group(pk), event) for pk in conversation_ids), *_conversation_rows(conversation_ids)])


def _conversation_rows(conversation_ids: list[int]) -> list[tuple[str, dict]]:
    rows = list_conversations_for_inbox(ids=conversation_ids, limit=len(conversation_ids))
    return [
        (INBOX_GROUP, _live({"type": "conversation", "conversation": ConversationPayload(row).data})) for row in rows
    ]


def _live(event: dict) -> dict:
    return {"type": "live.event", "event": event}


def _send(messages: list[tuple[str, dict]]) -> None:
    layer = get_channel_layer()
    if layer is None or not messages:
        return

    async def send_all() -> None:
        for group, message in messages:
            await layer.group_send(group, message)

    try:
        async_to_sync(send_all)()
    except Exception:  # a notification must never undo or fail the state change it reports
        logger.warning("Live inbox notification failed; pages catch up on reconnect.", exc_info=True)
