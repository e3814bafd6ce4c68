"""The web chat channel: our own widget, so our own wire format over the channel layer.

A visitor is identified by a random id in a signed cookie; their page joins one group and
receives replies from it. Delivery and read receipts come back from the page itself.
"""

from __future__ import annotations

import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from conversations.models import Provider

from .base import SendResult, Transport

BUSINESS_ADDRESS = "web"


def visitor_group(visitor_id: str) -> str:
    return f"webchat.{visitor_id}"


class WebchatTransport(Transport):
    """Our own widget: text and read receipts; no templates, no window, no files."""

    provider = Provider.WEBCHAT
    label = "Web chat"
    has_read_receipts = True

    def send_text(self, body: str, *, client_ref: str) -> SendResult:
        """Push a reply to every open widget of the visitor."""
        provider_message_id = f"webchat.{uuid.uuid4().hex}"
        self._push(
            {"type": "chat.message", "message": {"id": provider_message_id, "client_ref": client_ref, "text": body}}
        )
        return SendResult(provider_message_id=provider_message_id)

    def mark_read(self, provider_message_id: str) -> None:
        """Tell the visitor's widgets their message was read (ids there are the widget's own)."""
        self._push({"type": "chat.receipt", "receipt": {"id": provider_message_id.split(":", 1)[-1], "status": "read"}})

    def _push(self, event: dict[str, Any]) -> None:
        layer = get_channel_layer()
        if layer is None:  # the settings always configure one (Redis, else in memory)
            raise RuntimeError("CHANNEL_LAYERS is not configured")
        async_to_sync(layer.group_send)(visitor_group(self.customer_id), event)
