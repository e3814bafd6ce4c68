"""Live-inbox events: built in the process whose service notified (conversations/notify.py),
once its transaction committed and only while a page is open, and sent to the pages'
channel-layer groups.

Groups: `inbox` (every staff page: conversation rows, mode and holder changes) and
`conversation.<id>` (pages that have that conversation open: its messages, statuses, contact).
Events carry the same JSON the inbox API returns, so the page renders both the same way.
A notification that fails is logged and dropped: the page catches up through the API.

Sending: on Redis, one sender thread per process runs an event loop that sends the events in
the order they were built, on connections it keeps (async_to_sync would start a new loop,
and so open a new Redis connection, for every send); the notifying thread does not wait for
it. The in-memory layer (one process: `manage.py run`, tests) is sent to in the caller's thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

from conversations.models import Message
from conversations.notify import Event
from conversations.selectors.contacts import get_contact_for_inbox
from conversations.selectors.inbox import (
    get_unread_counts_by_agent,
    list_conversations_for_inbox,
    list_tool_calls_for_replies,
)
from conversations.serializers import ContactDetailSerializer, ConversationSerializer, MessageSerializer
from profiles.models import Contact

logger = logging.getLogger(__name__)

INBOX_GROUP = "inbox"


def conversation_group(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"


def staff_group(user_id: int) -> str:
    return f"staff.{user_id}"


def publish(event: Event) -> None:
    """Build and send one live-inbox event (notify's publisher, registered in apps.py)."""
    kind, *args = event
    {
        "message": _publish_messages,
        "status": _publish_status,
        "conversations": _publish_conversations,
        "contact": _publish_contact,
        "removed": _publish_removed,
    }[kind](*args)


def staff_access_revoked(*, user_id: int) -> None:
    """Close every live-inbox socket of a user who is no longer active staff."""
    transaction.on_commit(partial(_send, [(staff_group(user_id), {"type": "live.revoke"})]))


def staff_permissions_changed(*, user_id: int) -> None:
    """The user's live-inbox sockets re-read what they may do (their roles or permissions changed)."""
    transaction.on_commit(partial(_send, [(staff_group(user_id), {"type": "live.permissions"})]))


def _publish_messages(message_ids: list[int], event_type: str = "message") -> None:
    messages = list(
        Message.objects.select_related("staff_user")
        .prefetch_related("attachments")
        .filter(pk__in=message_ids)
        .order_by("id")
    )
    if not messages:
        return
    events = [
        (conversation_group(message.conversation_id), _live({"type": event_type, "message": _message_json(message)}))
        for message in messages
    ]
    _send([*events, *_conversation_rows(sorted({message.conversation_id for message in messages}))])


def _publish_status(message_id: int | None, provider: str, provider_message_id: str) -> None:
    messages = Message.objects.filter(pk=message_id) if message_id is not None else None
    if messages is None:
        messages = Message.objects.filter(provider=provider, provider_message_id=provider_message_id)
    found = messages.values_list("pk", flat=True).first()
    if found is not None:
        _publish_messages([found], "status")


def _publish_conversations(conversation_ids: list[int]) -> None:
    _send(_conversation_rows(conversation_ids))


def _publish_removed(conversation_ids: list[int]) -> None:
    event = _live({"type": "conversation_removed", "conversation_ids": conversation_ids})
    _send([(INBOX_GROUP, event), *((conversation_group(pk), event) for pk in conversation_ids)])


def _publish_contact(contact_id: int) -> None:
    try:
        contact = get_contact_for_inbox(contact_id=contact_id)
    except Contact.DoesNotExist:  # merged into another (that one is notified too) or erased
        return
    event = _live({"type": "contact", "contact": dict(ContactDetailSerializer(contact).data)})
    conversation_ids = [conversation.pk for conversation in contact.inbox_conversations]  # type: ignore[attr-defined]
    _send([*((conversation_group(pk), event) for pk in conversation_ids), *_conversation_rows(conversation_ids)])


def _message_json(message: Message) -> dict:
    tool_calls = list_tool_calls_for_replies(messages=[message])
    return dict(MessageSerializer(message, context={"tool_calls": tool_calls}).data)


def _conversation_rows(conversation_ids: list[int]) -> list[tuple[str, dict]]:
    """Rows for every page. `unread_count` is the team's; `unread_by` holds each agent's own count
    where they have read the conversation, and each page shows its agent's."""
    rows = list_conversations_for_inbox(ids=conversation_ids, limit=len(conversation_ids))
    unread_by = get_unread_counts_by_agent(conversation_ids=[row["id"] for row in rows])
    return [
        (
            INBOX_GROUP,
            _live(
                {
                    "type": "conversation",
                    "conversation": {
                        **ConversationSerializer(row).data,
                        "unread_by": {str(user_id): count for user_id, count in unread_by.get(row["id"], {}).items()},
                    },
                }
            ),
        )
        for row in rows
    ]


def _live(event: dict) -> dict:
    return {"type": "live.event", "event": event}


def _send(messages: list[tuple[str, dict]]) -> None:
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    if isinstance(layer, InMemoryChannelLayer):
        try:
            async_to_sync(_send_all)(layer, messages)
        except Exception:  # a notification must never undo or fail the state change it reports
            logger.warning("Live inbox notification failed; pages catch up on reconnect.", exc_info=True)
        return
    _sender().submit(layer, messages)


async def _send_all(layer, messages: list[tuple[str, dict]]) -> None:
    for group, message in messages:
        await layer.group_send(group, message)


class _Sender:
    """An event loop in a thread of its own that sends what it is given, in order."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        thread = threading.Thread(target=self._run, name="live-sender", daemon=True)
        thread.start()

    def submit(self, layer, messages: list[tuple[str, dict]]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (layer, messages))

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._drain())

    async def _drain(self) -> None:
        while True:
            layer, messages = await self.queue.get()
            try:
                await _send_all(layer, messages)
            except Exception:
                logger.warning("Live inbox notification failed; pages catch up on reconnect.", exc_info=True)


_sender_lock = threading.Lock()
_sender_instance: _Sender | None = None


def _sender() -> _Sender:
    global _sender_instance
    with _sender_lock:
        if _sender_instance is None or _sender_instance.pid != os.getpid():  # none yet, or forked
            _sender_instance = _Sender()
        return _sender_instance
