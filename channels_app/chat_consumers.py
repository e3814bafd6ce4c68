"""Websockets of the customer-side chat pages: the simulator and the web chat widget."""

from __future__ import annotations

import re

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from channels_app.simulator import may_open_simulator_socket
from channels_app.tasks import deliver_simulated_webhook
from channels_app.webchat import VISITOR_COOKIE, read_visitor_id
from conversations.providers import simulator, webchat
from conversations.selectors.webchat import is_webchat_conversation_of, list_webchat_messages
from conversations.services.webchat import acknowledge_webchat_message, receive_webchat_message

FORBIDDEN, UNAUTHENTICATED = 4403, 4401
_CLIENT_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")
MAX_TEXT = 4096


class SimulatorConsumer(AsyncJsonWebsocketConsumer):
    """One simulated customer's phone: receives the bot's replies, sends back receipts."""

    async def connect(self) -> None:
        if not await database_sync_to_async(may_open_simulator_socket)(self.scope):
            await self.close(code=FORBIDDEN)
            return
        self.customer_id = self.scope["url_route"]["kwargs"]["customer_id"]
        self.group = simulator.customer_group(self.customer_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def simulator_message(self, event: dict) -> None:
        await self.send_json({"type": "message", **event["message"]})

    async def simulator_receipt(self, event: dict) -> None:
        await self.send_json({"type": "receipt", **event["receipt"]})

    async def simulator_typing(self, event: dict) -> None:
        await self.send_json({"type": "typing"})

    async def receive_json(self, content: dict, **kwargs) -> None:
        message_id = str(content.get("id", ""))
        status = content.get("status")
        # Receipts only for what this transport delivered: never for a real customer's message.
        if content.get("type") != "receipt" or status not in ("delivered", "read"):
            return
        if not message_id.startswith(simulator.OUTBOUND_ID_PREFIX):
            return
        body = simulator.build_status_body(
            provider_message_id=message_id,
            status=status,
            customer_id=self.customer_id,
            client_ref=str(content.get("client_ref", ""))[:64],
        )
        await database_sync_to_async(deliver_simulated_webhook.delay)(body.decode())


class WebchatConsumer(AsyncJsonWebsocketConsumer):
    """A web chat visitor's widget: who they are comes from the signed cookie, nothing else."""

    async def connect(self) -> None:
        self.visitor_id = read_visitor_id(self.scope.get("cookies", {}).get(VISITOR_COOKIE))
        if self.visitor_id is None:
            await self.close(code=UNAUTHENTICATED)
            return
        requested = self.scope["url_route"]["kwargs"].get("conversation_id")
        self.conversation_id = int(requested) if requested else None
        if self.conversation_id is not None and not await database_sync_to_async(is_webchat_conversation_of)(
            visitor_id=self.visitor_id, conversation_id=self.conversation_id
        ):
            await self.close(code=FORBIDDEN)
            return
        self.group = webchat.visitor_group(self.visitor_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        history = await database_sync_to_async(list_webchat_messages)(
            visitor_id=self.visitor_id, conversation_id=self.conversation_id
        )
        await self.send_json({"type": "history", "messages": [_as_json(message) for message in history]})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def chat_message(self, event: dict) -> None:
        await self.send_json({"type": "message", **event["message"]})

    async def chat_receipt(self, event: dict) -> None:
        await self.send_json({"type": "receipt", **event["receipt"]})

    async def receive_json(self, content: dict, **kwargs) -> None:
        kind = content.get("type")
        if kind == "message":
            client_id, text = str(content.get("id", "")), str(content.get("text", "")).strip()
            if not _CLIENT_ID.match(client_id) or not text or len(text) > MAX_TEXT:
                await self.send_json({"type": "error", "id": client_id, "error": "invalid message"})
                return
            await database_sync_to_async(receive_webchat_message)(
                visitor_id=self.visitor_id, client_message_id=client_id, text=text
            )
            await self.send_json({"type": "accepted", "id": client_id})
        elif kind == "receipt":
            await database_sync_to_async(acknowledge_webchat_message)(
                visitor_id=self.visitor_id,
                provider_message_id=str(content.get("id", "")),
                status=str(content.get("status", "")),
            )


def _as_json(message) -> dict:
    # Inbound ids are "<visitor>:<client id>"; the widget knows its messages by the client id.
    message_id = (message.provider_message_id or str(message.uid)).split(":", 1)[-1]
    return {
        "id": message_id,
        "direction": message.direction,
        "text": message.text,
        "status": message.status,
    }
