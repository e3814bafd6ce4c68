"""The live inbox websocket: staff only, one socket per page.

Every socket joins the `inbox` group and its user's `staff.<id>` group; it joins
`conversation.<id>` for the conversation the page has open (and leaves the previous one), then
answers `{"type": "opened"}`: a page that read the conversation's messages before reads again.

Permissions are checked per message, never remembered for the socket's life: every action a
page sends declares its permission (`@socket_action`) and is checked against the user and
session as they are at that moment; every event sent to the page needs the permission of its
type (`EVENT_PERMISSIONS`), re-read at most every EVENT_PERMISSION_TTL_SECONDS. A socket
whose user may no longer read the inbox is closed (4403); an action it may not do is answered
`{"type": "forbidden"}`. A User save that removes staff access closes the sockets at once, and
a periodic re-check catches changes made without a save, or a session that was ended.

What the viewer may do on the page (conversations.api.PAGE_ACTIONS: the page renders with them
and reads them again from /api/setup/ when its socket reconnects) is sent as
`{"type": "permissions", "actions": {action: allowed}}` whenever it changes: at once when a
user's roles or permissions change (channels_app/signals.py), else at the periodic re-check. The
page hides the controls of what is not allowed.

While a socket is open it keeps the live inbox marked as watched (conversations/notify.py):
services build and send events only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from accounts.access import has_socket_permission, socket_permissions
from accounts.sessions import mark_session_active
from channels_app.live import INBOX_GROUP, conversation_group, staff_group
from conversations import notify
from conversations.api import PAGE_ACTIONS

# 4403: an application close code (4000-4999) that reads as "forbidden".
CLOSE_FORBIDDEN = 4403
# Reading the inbox at all: to connect, and on every message.
READ_INBOX = "conversations.view_conversation"
# What each event type sent to the page needs; an event type not listed here is not sent.
EVENT_PERMISSIONS = {
    "conversation": "conversations.view_conversation",
    "conversation_removed": "conversations.view_conversation",
    "message": "conversations.view_message",
    "status": "conversations.view_message",
    "contact": "profiles.view_contact",
}
# Events can come many per second: their permission is re-read at most this often.
EVENT_PERMISSION_TTL_SECONDS = 2.0

Handler = Callable[["LiveInboxConsumer", dict], Awaitable[None]]


def socket_action(name: str, *, permission: str) -> Callable[[Handler], Handler]:
    """Declare a message the page may send (`{"action": name, …}`) and the permission it needs."""

    def register(handler: Handler) -> Handler:
        handler.socket_action = (name, permission)  # type: ignore[attr-defined]
        return handler

    return register


def _declared_actions(cls: type) -> dict[str, tuple[str, Handler]]:
    """Action name → (permission, handler) of every `@socket_action` method of the class."""
    actions = {}
    for attribute in dir(cls):
        declared = getattr(getattr(cls, attribute, None), "socket_action", None)
        if declared:
            name, permission = declared
            actions[name] = (permission, getattr(cls, attribute))
    return actions


class LiveInboxConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        self.session_key = getattr(self.scope.get("session"), "session_key", None)
        if user is None or not user.is_authenticated or not await self._may(READ_INBOX, user_id=user.pk):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user_id = user.pk
        self.event_permissions: dict[str, tuple[float, bool]] = {}
        self.groups_joined = {INBOX_GROUP, staff_group(user.pk)}
        self.open_group: str | None = None
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await sync_to_async(notify.mark_watched)()
        # Processes that saw no page a moment ago look again within this time: whatever they
        # skipped meanwhile is in what the page reads once the socket is open.
        await asyncio.sleep(notify.PRESENCE_CHECK_SECONDS)
        await self.accept()
        # What the page was just rendered with (or reads from /api/setup/ on reconnect): read after
        # the handshake, which it would slow; the socket's messages wait for it.
        self.actions_sent = await self._actions()
        self.background = [
            asyncio.create_task(self._recheck_access_periodically()),
            asyncio.create_task(self._keep_watched()),
        ]

    async def disconnect(self, code: int) -> None:
        for task in getattr(self, "background", []):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for group in getattr(self, "groups_joined", set()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        action = content.get("action") if isinstance(content, dict) else None
        declared = ACTIONS.get(action) if isinstance(action, str) else None
        if declared is None:
            return
        permission, handler = declared
        if not await self._may(READ_INBOX):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        if not await self._may(permission):
            await self.send_json({"type": "forbidden", "action": action})
            return
        await database_sync_to_async(mark_session_active)(self.session_key)
        await handler(self, content)

    @socket_action("open", permission="conversations.view_conversation")
    async def open_conversation(self, content: dict) -> None:
        conversation_id = content.get("conversation_id")
        if self.open_group is not None:
            await self.channel_layer.group_discard(self.open_group, self.channel_name)
            self.groups_joined.discard(self.open_group)
            self.open_group = None
        if isinstance(conversation_id, int) and not isinstance(conversation_id, bool):
            self.open_group = conversation_group(conversation_id)
            self.groups_joined.add(self.open_group)
            await self.channel_layer.group_add(self.open_group, self.channel_name)
            await self.send_json({"type": "opened", "conversation_id": conversation_id})

    async def live_event(self, message: dict) -> None:
        event = message["event"]
        permission = EVENT_PERMISSIONS.get(event.get("type"))
        if permission is not None and await self._may_receive(permission):
            await self.send_json(event)

    async def live_revoke(self, message: dict) -> None:
        await self.close(code=CLOSE_FORBIDDEN)

    async def live_permissions(self, message: dict) -> None:
        await self._send_actions()

    async def _actions(self) -> dict[str, bool] | None:
        """What the viewer may do on the page; None when they may no longer read the inbox (the
        socket closes at its next message or check)."""
        allowed = await database_sync_to_async(socket_permissions)(
            self.user_id, self.session_key, [READ_INBOX, *PAGE_ACTIONS.values()]
        )
        if not allowed[READ_INBOX]:
            return None
        return {action: allowed[permission] for action, permission in PAGE_ACTIONS.items()}

    async def _send_actions(self) -> None:
        """What the viewer may do on the page, sent when it differs from what the page has."""
        actions = await self._actions()
        if actions is not None and actions != self.actions_sent:
            self.actions_sent = actions
            await self.send_json({"type": "permissions", "actions": actions})

    async def _may(self, permission: str, *, user_id: int | None = None) -> bool:
        return await database_sync_to_async(has_socket_permission)(
            user_id if user_id is not None else self.user_id, self.session_key, permission
        )

    async def _may_receive(self, permission: str) -> bool:
        checked_at, allowed = self.event_permissions.get(permission, (0.0, False))
        if time.monotonic() - checked_at > EVENT_PERMISSION_TTL_SECONDS:
            allowed = await self._may(permission)
            self.event_permissions[permission] = (time.monotonic(), allowed)
        return allowed

    async def _keep_watched(self) -> None:
        while True:
            await asyncio.sleep(notify.PRESENCE_REFRESH_SECONDS)
            with contextlib.suppress(Exception):  # a cache hiccup: the next round marks it again
                await sync_to_async(notify.mark_watched)()

    async def _recheck_access_periodically(self) -> None:
        while True:
            await asyncio.sleep(settings.LIVE_ACCESS_RECHECK_SECONDS)
            if not await self._may(READ_INBOX):
                await self.close(code=CLOSE_FORBIDDEN)
                return
            await self._send_actions()


ACTIONS = _declared_actions(LiveInboxConsumer)
