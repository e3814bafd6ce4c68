"""Reads for the staff back-office (admin and live inbox): a fixed number of queries per list,
whatever its length.

The live inbox lists conversations by *view* (its triage tabs) and filters, a page at a time
(keyset pagination on the `conversation_page_idx` order: newest activity first, id breaking ties).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import (
    Count,
    DecimalField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce, Substr
from django.utils import timezone

from conversations.models import (
    CannedResponse,
    Channel,
    Conversation,
    Label,
    Message,
    ModelUsage,
    ReadMarker,
    ToolCall,
)
from profiles.models import ClientProfile

PREVIEW_CHARS = 120

# Messages that are not part of the chat with the customer: neither previews nor "last message".
STAFF_ONLY_AUTHORS = [Message.Author.NOTE, Message.Author.PRIVATE_NOTE]

VIEWS = ("needs_person", "mine", "unassigned", "open", "snoozed", "resolved", "all")


def annotate_inbox_summary(queryset: QuerySet[Conversation], *, viewer_id: int | None = None) -> QuerySet[Conversation]:
    """Add the last message, the delivery state of the last reply and the unread count to each row.

    The unread count is the viewer's own (from their read marker); without a viewer, or for a
    viewer who never opened the conversation, the team's (the conversation's marker).
    Correlated subqueries instead of prefetches keep the list at one query for any row count.
    """
    visible = Message.objects.filter(conversation=OuterRef("pk")).exclude(author__in=STAFF_ONLY_AUTHORS)
    latest = visible.order_by("-created_at", "-id")
    latest_outbound = latest.filter(direction=Message.Direction.OUTBOUND)
    read_up_to: Any = OuterRef("last_read_message_id")
    if viewer_id is not None:
        own = ReadMarker.objects.filter(conversation=OuterRef(OuterRef("pk")), user_id=viewer_id)
        read_up_to = Coalesce(Subquery(own.values("last_read_message_id")[:1]), OuterRef("last_read_message_id"))
    unread = (
        Message.objects.filter(conversation=OuterRef("pk"), direction=Message.Direction.INBOUND, id__gt=read_up_to)
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


@dataclass(frozen=True)
class InboxFilters:
    """What the live inbox narrows the list to; every field optional."""

    view: str = "all"
    channel: str = ""
    agent: str = ""  # a staff user's id, or "bot" (conversations the bot answers)
    label_id: int | None = None
    since: date | None = None
    until: date | None = None


def _view_condition(view: str, viewer_id: int | None, now: datetime) -> Q:
    unresolved = Q(resolved_at__isnull=True, status=Conversation.Status.OPEN)
    awake = Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=now)
    conditions = {
        "needs_person": unresolved & Q(needs_human=True),
        "mine": unresolved & Q(assigned_to_id=viewer_id, mode=Conversation.Mode.HUMAN),
        "unassigned": unresolved & awake & Q(assigned_to__isnull=True),
        "open": unresolved & awake,
        "snoozed": unresolved & Q(snoozed_until__gt=now),
        "resolved": ~unresolved,
    }
    return conditions.get(view, Q())


def _filtered(filters: InboxFilters, viewer_id: int | None) -> QuerySet[Conversation]:
    queryset = Conversation.objects.filter(_view_condition(filters.view, viewer_id, timezone.now()))
    if filters.channel:
        queryset = queryset.filter(channel=filters.channel)
    if filters.agent == "bot":
        queryset = queryset.filter(mode=Conversation.Mode.BOT)
    elif filters.agent:
        queryset = queryset.filter(assigned_to_id=int(filters.agent), mode=Conversation.Mode.HUMAN)
    if filters.label_id is not None:
        queryset = queryset.filter(labels__id=filters.label_id)
    if filters.since is not None:
        queryset = queryset.filter(updated_at__date__gte=filters.since)
    if filters.until is not None:
        queryset = queryset.filter(updated_at__date__lte=filters.until)
    return queryset


def list_conversations_for_inbox(
    *,
    limit: int = 200,
    ids: list[int] | None = None,
    viewer_id: int | None = None,
    filters: InboxFilters | None = None,
    before: tuple[datetime, int] | None = None,
) -> list[InboxRow]:
    """The most recently active conversations, newest first, as rows of plain values (`InboxRow`)
    with their summaries, `labels` and the channels their contact uses (`contact_channels`);
    `before` (the last row's updated_at and id) asks for the next page."""
    queryset = _filtered(filters, viewer_id) if filters is not None else Conversation.objects.all()
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    if before is not None:
        updated_at, pk = before
        queryset = queryset.filter(Q(updated_at__lt=updated_at) | Q(updated_at=updated_at, pk__lt=pk))
    rows = _rows(queryset, viewer_id).order_by("-updated_at", "-id")[:limit]
    return _with_labels([_collect_contact_channels(row) for row in rows])


def count_conversations_by_view(*, viewer_id: int, filters: InboxFilters | None = None) -> dict[str, int]:
    """How many conversations each triage view holds (with the other filters applied): one query."""
    filters = replace(filters or InboxFilters(), view="all")
    queryset = _filtered(filters, viewer_id)
    now = timezone.now()
    conditions = {view: _view_condition(view, viewer_id, now) for view in VIEWS}
    distinct = filters.label_id is not None  # only the labels' join can repeat a row
    counts = queryset.aggregate(
        **{view: Count("pk", filter=condition or None, distinct=distinct) for view, condition in conditions.items()}
    )
    return {view: counts[view] for view in VIEWS}


# An inbox row: plain values (`_ROW_FIELDS` and every annotation of the summary), not model objects.
# Building a conversation, its identity, contact, holder and agent as models was a third of
# a 200-row page's CPU time (bench/inbox.py); every other column is left unread.
InboxRow = dict[str, Any]

_ROW_FIELDS = (
    "id",
    "channel",
    "status",
    "mode",
    "needs_human",
    "taken_over_at",
    "last_customer_message_at",
    "resolved_at",
    "snoozed_until",
    "updated_at",
    "assigned_to_id",
    "assigned_to__first_name",
    "assigned_to__last_name",
    "assigned_to__username",
    "current_agent__name",
    "profile_id",
    "profile__contact_id",
    "profile__provider",
    "profile__external_id",
    "profile__phone_number",
    "profile__display_name",
    "profile__updated_at",
    "profile__contact__first_name",
    "profile__contact__last_name",
    "profile__contact__opted_out_at",
)


def _rows(queryset: QuerySet[Conversation], viewer_id: int | None) -> QuerySet[Conversation, InboxRow]:
    summarised = _with_contact_channels(annotate_inbox_summary(queryset, viewer_id=viewer_id))
    return summarised.values(*_ROW_FIELDS, *summarised.query.annotations)


def _with_contact_channels(queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """One of the contact's conversations per channel (a fixed, short list) it has one on, and a
    name any of its identities was given: the inbox shows a person once, under one name, with a
    badge per channel, still in one query.

    Scalar subqueries, not EXISTS: PostgreSQL may answer an EXISTS with a hashed subplan, which
    reads every conversation of the channel (four scans of 100,000 rows, most of a 200-row page's
    time in bench/inbox.py); a `LIMIT 1` subquery is an index look-up per row."""
    contact = OuterRef("profile__contact_id")
    of_contact = Conversation.objects.filter(profile__contact_id=contact).order_by()
    named = ClientProfile.objects.filter(contact_id=contact).exclude(display_name="").order_by("pk")
    return queryset.annotate(
        contact_display_name=Subquery(named.values("display_name")[:1]),
        **{
            f"uses_{channel}": Subquery(of_contact.filter(channel=channel).values("pk")[:1])
            for channel in Channel.values
        },
    )


def _collect_contact_channels(row: InboxRow) -> InboxRow:
    row["contact_channels"] = [channel for channel in Channel.values if row.pop(f"uses_{channel}") is not None]
    return row


def get_unread_counts_by_agent(*, conversation_ids: list[int]) -> dict[int, dict[int, int]]:
    """{conversation id: {user id: unread count}} for every agent with a read marker there: the
    live events carry them, so each page shows its own agent's count."""
    unread = (
        Message.objects.filter(
            conversation=OuterRef("conversation"),
            direction=Message.Direction.INBOUND,
            id__gt=OuterRef("last_read_message_id"),
        )
        .order_by()
        .values("conversation")
        .annotate(count=Count("id"))
        .values("count")
    )
    rows = (
        ReadMarker.objects.filter(conversation_id__in=conversation_ids)
        .annotate(unread=Coalesce(Subquery(unread, output_field=IntegerField()), 0))
        .values_list("conversation_id", "user_id", "unread")
    )
    counts: dict[int, dict[int, int]] = {}
    for conversation_id, user_id, count in rows:
        counts.setdefault(conversation_id, {})[user_id] = count
    return counts


def _with_labels(rows: list[InboxRow]) -> list[InboxRow]:
    """Each row's labels by name, as `labels` ({id, name, color}): one query of plain values."""
    labels: dict[int, list[dict[str, Any]]] = {row["id"]: [] for row in rows}
    tagged = Conversation.labels.through.objects.filter(conversation_id__in=labels).order_by("label__name")
    for conversation_id, label_id, name, color in tagged.values_list(
        "conversation_id", "label_id", "label__name", "label__color"
    ):
        labels[conversation_id].append({"id": label_id, "name": name, "color": color})
    for row in rows:
        row["labels"] = labels[row["id"]]
    return rows


def get_conversation_for_inbox(*, conversation_id: int, viewer_id: int | None = None) -> InboxRow:
    row = _rows(Conversation.objects.filter(pk=conversation_id), viewer_id).get()
    return _with_labels([_collect_contact_channels(row)])[0]


def list_messages_for_inbox(
    *, conversation_id: int, after_id: int = 0, limit: int = 200, around_id: int | None = None
) -> list[Message]:
    """Messages with an id above `after_id`, oldest first; without `after_id`, the last `limit`;
    with `around_id`, the last `limit` up to that message and everything after it up to `limit`
    (a search result opens there)."""
    messages = (
        Message.objects.filter(conversation_id=conversation_id)
        .select_related("staff_user")
        .prefetch_related("attachments")
    )
    if around_id is not None:
        older = list(reversed(messages.filter(id__lte=around_id).order_by("-id")[:limit]))
        return older + list(messages.filter(id__gt=around_id).order_by("id")[:limit])
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


def get_last_customer_provider_message_id(*, conversation_id: int) -> str:
    """The provider's id of the customer's last message (what a read receipt or typing names)."""
    last = (
        Message.objects.filter(
            conversation_id=conversation_id, author=Message.Author.CUSTOMER, provider_message_id__isnull=False
        )
        .order_by("-id")
        .values_list("provider_message_id", flat=True)
        .first()
    )
    return last or ""


def list_active_staff() -> list[AbstractBaseUser]:
    """Who a conversation can be assigned to."""
    return list(get_user_model().objects.filter(is_active=True, is_staff=True).order_by("first_name", "username"))


def list_labels() -> list[Label]:
    return list(Label.objects.order_by("name"))


def list_canned_responses() -> list[CannedResponse]:
    return list(CannedResponse.objects.order_by("shortcut"))
