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
    texts = format_for_channel(
        message.text, channel=message.conversation.channel, is_markdown=message.author == Message.Author.BOT
    ) or [message.text]
    MessagePart.objects.bulk_create(
        [MessagePart(message=message, index=index, text=text) for index, text in enumerate(texts)],
        ignore_conflicts=True,
    )
    return list(message.parts.order_by("index"))


def parts_in_doubt(*, attempted_before: datetime | None = None) -> QuerySet[MessagePart]:
    """Parts of the outer query's message that may have reached the provider: marked attempted,
    with no provider id (for Exists(...) on Message rows)."""
    parts = MessagePart.objects.filter(message=OuterRef("pk"), attempted_at__isnull=False, provider_message_id="")
    return parts.filter(attempted_at__lt=attempted_before) if attempted_before else parts
