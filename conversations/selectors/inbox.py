"""Reads for the staff back-office (admin and live inbox): one query per list, whatever its length."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, DecimalField, Exists, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce, Substr

from conversations.models import Channel, Conversation, Message, ModelUsage, ToolCall
from profiles.models import ClientProfile

PREVIEW_CHARS = 120


def annotate_inbox_summary(queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """Add the last message, the delivery state of the last reply and the unread count to each row.

    Correlated subqueries instead of prefetches keep the list at one query for any row count.
    """
    visible = Message.objects.filter(conversation=OuterRef("pk")).exclude(author=Message.Author.NOTE)
    latest = visible.order_by("-created_at", "-id")
    latest_outbound = latest.filter(direction=Message.Direction.OUTBOUND)
    unread = (
        Message.objects.filter(
            conversation=OuterRef("pk"),
            direction=Message.Direction.INBOUND,
            id__gt=OuterRef("last_read_message_id"),
        )
        .order_by()
        .values("conversation")
        .annotate(count=Count("id"))
        .values("count")
    )
    return queryset.select_related("profile__contact", "assigned_to", "current_agent").annotate(
        last_message_preview=Subquery(latest.annotate(preview=Substr("text", 1, PREVIEW_CHARS)).values("preview")[:1]),
        last_message_kind=Subquery(latest.values("kind")[:1]),
        last_message_author=Subquery(latest.values("author")[:1]),
        last_message_at=Subquery(latest.values("created_at")[:1]),
        delivery_status=Subquery(latest_outbound.values("status")[:1]),
        delivery_error=Subquery(latest_outbound.values("error_title")[:1]),
        unread_count=Coalesce(Subquery(unread, output_field=IntegerField()), 0),
        # What the model cost for this conversation, and for all conversations of its contact.
        cost=_total_cost(conversation=OuterRef("pk")),
        # The person's, on every channel and identity.
        contact_cost=_total_cost(conversation__profile__contact=OuterRef("profile__contact_id")),
    )


_MONEY = DecimalField(max_digits=14, decimal_places=6)


def _total_cost(**where: OuterRef) -> CombinedExpression:
    def of(model: type[Message] | type[ModelUsage]) -> Coalesce:
        costs = model.objects.filter(cost__isnull=False, **where).order_by().values(*where)
        total = Subquery(costs.annotate(total=Sum("cost")).values("total")[:1], output_field=_MONEY)
        return Coalesce(total, Value(Decimal(0)), output_field=_MONEY)

    return of(Message) + of(ModelUsage)


def list_conversations_for_inbox(*, limit: int = 200, ids: list[int] | None = None) -> list[Conversation]:
    """The most recently active conversations, newest first, with their summaries and the
    channels their contact uses (`contact_channels`)."""
    queryset = Conversation.objects.all()
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    rows = _with_contact_channels(annotate_inbox_summary(queryset)).order_by("-updated_at", "-id")[:limit]
    return [_collect_contact_channels(row) for row in rows]


def get_conversation_for_inbox(*, conversation_id: int) -> Conversation:
    row = _with_contact_channels(annotate_inbox_summary(Conversation.objects.filter(pk=conversation_id))).get()
    return _collect_contact_channels(row)


def _with_contact_channels(queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """One flag per channel (a fixed, short list) the row's contact has a conversation on, and a
    name any of its identities was given: the inbox shows a person once, under one name, with a
    badge per channel, still in one query."""
    contact = OuterRef("profile__contact_id")
    of_contact = Conversation.objects.filter(profile__contact_id=contact)
    named = ClientProfile.objects.filter(contact_id=contact).exclude(display_name="").order_by("pk")
    return queryset.annotate(
        contact_display_name=Subquery(named.values("display_name")[:1]),
        **{f"uses_{channel}": Exists(of_contact.filter(channel=channel)) for channel in Channel.values},
    )


def _collect_contact_channels(row: Conversation) -> Conversation:
    row.contact_channels = [channel for channel in Channel.values if getattr(row, f"uses_{channel}")]  # type: ignore[attr-defined]
    return row


def list_messages_for_inbox(*, conversation_id: int, after_id: int = 0, limit: int = 200) -> list[Message]:
    """Messages with an id above `after_id`, oldest first; without `after_id`, the last `limit`."""
    messages = Message.objects.filter(conversation_id=conversation_id).select_related("staff_user")
    if after_id:
        return list(messages.filter(id__gt=after_id).order_by("id")[:limit])
    return list(reversed(messages.order_by("-id")[:limit]))


def get_contact_cost(*, contact_id: int) -> Decimal:
    """What the model cost for all conversations of one contact, on every channel."""
    mine = {"conversation__profile__contact_id": contact_id}
    replies = Message.objects.filter(**mine).aggregate(total=Sum("cost"))["total"]
    other = ModelUsage.objects.filter(**mine).aggregate(total=Sum("cost"))["total"]
    return (replies or Decimal(0)) + (other or Decimal(0))


def list_tool_calls_for_replies(*, messages: list[Message]) -> dict[int, list[ToolCall]]:
    """The function calls made while writing each bot reply among `messages`, by reply id."""
    answered = {message.in_reply_to_id: message.pk for message in messages if message.author == Message.Author.BOT}
    answered.pop(None, None)
    calls: dict[int, list[ToolCall]] = {}
    if answered:
        for call in ToolCall.objects.filter(message_id__in=answered).order_by("id"):
            calls.setdefault(answered[call.message_id], []).append(call)
    return calls
