"""The web chat channel's inbound side: what a visitor's widget sends over its websocket."""

from __future__ import annotations

from conversations.models import Channel, Message, Provider
from conversations.providers import webchat
from conversations.providers.base import InboundMessage, StatusUpdate
from conversations.services.inbound import apply_status, record_inbound

_RECEIPTS = {"delivered": Message.Status.DELIVERED, "read": Message.Status.READ}


def receive_webchat_message(*, visitor_id: str, client_message_id: str, text: str) -> Message | None:
    """Record a visitor's message like any provider's; None if the widget sent it before."""
    return record_inbound(
        inbound=InboundMessage(
            provider=Provider.WEBCHAT,
            # Scoped to the visitor: one visitor's ids can never shadow another's.
            provider_message_id=f"{visitor_id}:{client_message_id}",
            channel=Channel.WEBCHAT,
            business_address=webchat.BUSINESS_ADDRESS,
            external_user_id=visitor_id,
            kind=Message.Kind.TEXT,
            text=text,
            display_name=f"Web visitor {visitor_id[:6]}",
        )
    )


def acknowledge_webchat_message(*, visitor_id: str, provider_message_id: str, status: str) -> bool:
    """Apply a delivery or read receipt from the widget, only for the visitor's own messages."""
    is_own = Message.objects.filter(
        provider=Provider.WEBCHAT,
        provider_message_id=provider_message_id,
        conversation__profile__external_id=visitor_id,
    ).exists()
    if not is_own or status not in _RECEIPTS:
        return False
    return apply_status(
        update=StatusUpdate(
            provider=Provider.WEBCHAT, provider_message_id=provider_message_id, status=_RECEIPTS[status]
        )
    )
