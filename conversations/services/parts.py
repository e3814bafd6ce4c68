"""An outbound message as the provider messages it is sent in: formatted and split."""

from __future__ import annotations

from datetime import datetime

from django.db.models import OuterRef, QuerySet

from conversations.formatting import format_for_channel
from conversations.models import Message, MessagePart


def get_or_create_parts(*, message: Message) -> list[MessagePart]:
    """The message's parts in order, created (before any provider call) on first use.

    Bot text is the model's Markdown, converted for the channel; staff type WhatsApp's own
    markup, which is sent as typed. Later calls return the stored parts, sent ones included.
    """
    parts = list(message.parts.order_by("index"))
    if parts:
        return parts
    MessagePart.objects.bulk_create(_split(message), ignore_conflicts=True)
    return list(message.parts.order_by("index"))


def create_parts(*, message: Message) -> list[MessagePart]:
    """The parts of a message stored in this same transaction, which has none yet: one INSERT
    whose parts come back with their ids (read back only where the database cannot return them)."""
    parts = MessagePart.objects.bulk_create(_split(message))
    return parts if all(part.pk for part in parts) else list(message.parts.order_by("index"))


def _split(message: Message) -> list[MessagePart]:
    texts = format_for_channel(
        message.text, channel=message.conversation.channel, is_markdown=message.author == Message.Author.BOT
    ) or [message.text]
    return [MessagePart(message=message, index=index, text=text) for index, text in enumerate(texts)]


def parts_in_doubt(*, attempted_before: datetime | None = None) -> QuerySet[MessagePart]:
    """Parts of the outer query's message that may have reached the provider: marked attempted,
    with no provider id (for Exists(...) on Message rows)."""
    parts = MessagePart.objects.filter(message=OuterRef("pk"), attempted_at__isnull=False, provider_message_id="")
    return parts.filter(attempted_at__lt=attempted_before) if attempted_before else parts
