"""Reads of the web chat widget: a visitor sees only their own conversations."""

from __future__ import annotations

from conversations.models import Conversation, Message

CUSTOMER_VISIBLE_AUTHORS = [Message.Author.CUSTOMER, Message.Author.BOT, Message.Author.STAFF]


def list_webchat_messages(*, visitor_id: str, conversation_id: int | None = None, limit: int = 50) -> list[Message]:
    """The visitor's recent messages (of one of their conversations, if given), oldest first."""
    messages = Message.objects.filter(
        conversation__profile__provider="webchat",
        conversation__profile__external_id=visitor_id,
        # What was said between the visitor and the business: no internal or private notes.
        author__in=CUSTOMER_VISIBLE_AUTHORS,
    )
    if conversation_id is not None:
        messages = messages.filter(conversation_id=conversation_id)
    return list(reversed(messages.order_by("-id")[:limit]))


def is_webchat_conversation_of(*, visitor_id: str, conversation_id: int) -> bool:
    return Conversation.objects.filter(
        pk=conversation_id, profile__provider="webchat", profile__external_id=visitor_id
    ).exists()
