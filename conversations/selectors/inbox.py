"""Reads for the staff back-office (admin and live inbox): one query per list, whatever its length."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, DecimalField, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce, Substr

from conversations.models import Conversation, Message, ModelUsage, ToolCall

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
    return queryset.select_related("profile", "assigned_to", "current_agent").annotate(
        last_message_preview=Subquery(latest.annotate(preview=Substr("text", 1, PREVIEW_CHARS)).values("preview")[:1]),
        last_message_kind=Subquery(latest.values("kind")[:1]),
        last_message_author=Subquery(latest.values("author")[:1]),
        last_message_at=Subquery(latest.values("created_at")[:1]),
        delivery_status=Subquery(latest_outbound.values("status")[:1]),
        delivery_error=Subquery(latest_outbound.values("error_title")[:1]),
        unread_count=Coalesce(Subquery(unread, output_field=IntegerField()), 0),
        # What the model cost for this conversation, and for all conversations of its contact.
        cost=_total_cost(conversation=OuterRef("pk")),
        contact_cost=_total_cost(conversation__profile=OuterRef("profile_id")),
    )


_MONEY = DecimalField(max_digits=14, decimal_places=6)


def _total_cost(**where: OuterRef) -> CombinedExpression:
    def of(model: type[Message] | type[ModelUsage]) -> Coalesce:
        costs = model.objects.filter(cost__isnull=False, **where).order_by().values(*where)
        total = Subquery(costs.annotate(total=Sum("cost")).values("total")[:1], output_field=_MONEY)
        return Coalesce(total, Value(Decimal(0)), output_field=_MONEY)

    return of(Message) + of(ModelUsage)


def list_conversations_for_inbox(*, limit: int = 200, ids: list[int] | None = None) -> list[Conversation]:
    """The most recently active conversations, newest first, with their summaries."""
    queryset = Conversation.objects.all()
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    return list(annotate_inbox_summary(queryset).order_by("-updated_at", "-id")[:limit])


def get_conversation_for_inbox(*, conversation_id: int) -> Conversation:
    return annotate_inbox_summary(Conversation.objects.filter(pk=conversation_id)).get()


def list_messages_for_inbox(*, conversation_id: int, after_id: int = 0, limit: int = 200) -> list[Message]:
    """Messages with an id above `after_id`, oldest first; without `after_id`, the last `limit`."""
    messages = Message.objects.filter(conversation_id=conversation_id).select_related("staff_user")
    if after_id:
        return list(messages.filter(id__gt=after_id).order_by("id")[:limit])
    return list(reversed(messages.order_by("-id")[:limit]))


def get_contact_cost(*, profile_id: int) -> Decimal:
    """What the model cost for all conversations of one contact."""
    replies = Message.objects.filter(conversation__profile_id=profile_id).aggregate(total=Sum("cost"))["total"]
    other = ModelUsage.objects.filter(conversation__profile_id=profile_id).aggregate(total=Sum("cost"))["total"]
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
