"""The live inbox websocket: staff only, one socket per page.

Every socket joins the `inbox` group and its user's `staff.<id>` group; it joins
`conversation.<id>` for the conversation the page has open (and leaves the previous one).
A socket closes when its user stops being active staff (a User save broadcasts that, and a
periodic re-check also catches changes made without a save, or a session that was ended).

While a socket is open it keeps the live inbox marked as watched (conversations/notify.py):
services build and send events only then.
"""

from __future__ import annotations

import asyncio
import contextlib
from importlib import import_module

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user_model

from channels_app.live import INBOX_GROUP, conversation_group, staff_group
from conversations import notify

# 4403: an application close code (4000-4999) that reads as "forbidden".
CLOSE_FORBIDDEN = 4403


class LiveInboxConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not (user.is_authenticated and user.is_active and user.is_staff):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user_id = user.pk
        self.session_key = getattr(self.scope.get("session"), "session_key", None)
        self.groups_joined = {INBOX_GROUP, staff_group(user.pk)}
        self.open_group: str | None = None
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await sync_to_async(notify.mark_watched)()
        # Processes that saw no page a moment ago look again within this time: whatever they
        # skipped meanwhile is in what the page reads once the socket is open.
        await asyncio.sleep(notify.PRESENCE_CHECK_SECONDS)
        await self.accept()
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

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict) or content.get("action") != "open":
            return
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
        await self.send_json(message["event"])

    async def live_revoke(self, message: dict) -> None:
        await self.close(code=CLOSE_FORBIDDEN)

    async def _keep_watched(self) -> None:
        while True:
            await asyncio.sleep(notify.PRESENCE_REFRESH_SECONDS)
            with contextlib.suppress(Exception):  # a cache hiccup: the next round marks it again
                await sync_to_async(notify.mark_watched)()

    async def _recheck_access_periodically(self) -> None:
        while True:
            await asyncio.sleep(settings.LIVE_ACCESS_RECHECK_SECONDS)
            if not await database_sync_to_async(_has_access)(self.user_id, self.session_key):
                await self.close(code=CLOSE_FORBIDDEN)
                return


def _has_access(user_id: int, session_key: str | None) -> bool:
    is_staff = get_user_model().objects.filter(pk=user_id, is_active=True, is_staff=True).exists()
    if not is_staff or session_key is None:
        return is_staff
    return import_module(settings.SESSION_ENGINE).SessionStore().exists(session_key)
