"""Reads. Every query the services and views need, in one place."""

from __future__ import annotations

from conversations.ai import Turn
from conversations.models import Message


def list_turns_for_prompt(*, message: Message, limit: int) -> list[Turn]:
    """The last `limit` messages with words in them, up to and including `message`, oldest first."""
    recent = (
        Message.objects.filter(conversation_id=message.conversation_id, id__lte=message.id)
        .exclude(text="")
        .exclude(status=Message.Status.FAILED)
        .order_by("-id")
        .values_list("author", "text")[:limit]
    )
    return [Turn(role=_ROLES.get(author, "assistant"), text=text) for author, text in reversed(recent)]


# Staff and bot both speak for the business; internal notes (takeover, hand-back) instruct the model.
_ROLES = {Message.Author.CUSTOMER: "user", Message.Author.NOTE: "developer"}
