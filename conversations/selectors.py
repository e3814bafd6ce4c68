"""Reads. Every query the services and views need, in one place."""

from __future__ import annotations

from conversations.ai import Turn
from conversations.models import Conversation, Message


def list_turns_for_prompt(*, message: Message, limit: int) -> list[Turn]:
    """The last `limit` messages with words in them, up to and including `message`, oldest first."""
    recent = (
        Message.objects.filter(conversation_id=message.conversation_id, id__lte=message.id)
        .exclude(text="")
        .exclude(status=Message.Status.FAILED)
        .order_by("-id")
        .values_list("author", "text")[:limit]
    )
    return [
        Turn(role="user" if author == Message.Author.CUSTOMER else "assistant", text=text)
        for author, text in reversed(recent)
    ]


def list_webchat_messages(*, visitor_id: str, conversation_id: int | None = None, limit: int = 50) -> list[Message]:
    """The visitor's recent messages (of one of their conversations, if given), oldest first."""
    messages = Message.objects.filter(
        conversation__profile__provider="webchat", conversation__profile__external_id=visitor_id
    )
    if conversation_id is not None:
        messages = messages.filter(conversation_id=conversation_id)
    return list(reversed(messages.order_by("-id")[:limit]))


def is_webchat_conversation_of(*, visitor_id: str, conversation_id: int) -> bool:
    return Conversation.objects.filter(
        pk=conversation_id, profile__provider="webchat", profile__external_id=visitor_id
    ).exists()
