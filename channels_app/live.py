"""Live-inbox events: built by a worker from what services notified (conversations/notify.py)
and sent to the pages' channel-layer groups.

Groups: `inbox` (every staff page: conversation rows, mode and holder changes) and
`conversation.<id>` (pages that have that conversation open: its messages, statuses, profile).
Events carry the same JSON the inbox API returns, so the page renders both the same way.
A notification that fails is logged and dropped: the page catches up through the API.
"""

from __future__ import annotations

import logging
from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from conversations.models import Conversation, Message
from conversations.selectors.inbox import list_conversations_for_inbox
from conversations.serializers import ConversationSerializer, MessageSerializer, ProfileSerializer
from profiles.models import ClientProfile

logger = logging.getLogger(__name__)

INBOX_GROUP = "inbox"


def conversation_group(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"


def staff_group(user_id: int) -> str:
    return f"staff.{user_id}"


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
    event = {"type": event_type, "message": dict(MessageSerializer(message).data)}
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
    event = _live({"type": "profile", "profile": dict(ProfileSerializer(profile).data)})
    conversation_ids = list(Conversation.objects.filter(profile_id=profile_id).values_list("id", flat=True))
    _send([*((conversation_group(pk), event) for pk in conversation_ids), *_conversation_rows(conversation_ids)])


def _conversation_rows(conversation_ids: list[int]) -> list[tuple[str, dict]]:
    rows = list_conversations_for_inbox(ids=conversation_ids, limit=len(conversation_ids))
    return [
        (INBOX_GROUP, _live({"type": "conversation", "conversation": ConversationSerializer(row).data})) for row in rows
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
