"""Limits on what customers cost: model replies per minute and tokens per day for each contact
(the person, whichever channels they write on), and a monthly spend cap for the whole account,
from the MODEL_PRICES table.

A reply that would pass a limit is not sent to the model. The contact gets one polite notice per
limit and period (an hour for the reply rate, the day for tokens, the month for the cap), the
conversation is flagged for staff, and further messages in the period cost nothing. Limits reset
on their own. The reply rate is a sliding minute: the replies of the last 60 seconds, whatever
the clock minute, counted and written under the contact's row lock. The other counters are per
period (UsageWindow, MonthlySpend), raised by conditional UPDATEs; either way concurrent workers
never pass a limit together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Subquery, Sum
from django.utils import timezone

from conversations.models import AuditEntry, Message, UsageWindow
from conversations.services.handoff import flag_needs_human
from conversations.services.usage import get_month_spend, month_start
from profiles.models import Contact

logger = logging.getLogger(__name__)

LIMIT_NOTICE = (
    "Thanks for your messages! I've reached the limit of what I can answer automatically for now, "
    "so a colleague will look at this conversation and reply to you here."
)


# The budgets' clock. Tests replace it to replay minutes and days (`monkeypatch.setattr(budgets,
# "clock", …)`) without patching django.utils.timezone.now, every other module's clock too.
clock: Callable[[], datetime] = timezone.now


@dataclass(frozen=True)
class Limit:
    name: str  # replies_per_minute | tokens_per_day | monthly_spend
    notice_kind: UsageWindow.Kind
    notice_period_start: datetime


def take_reply_allowance(*, inbound: Message) -> Limit | None:
    """Count one model reply for the contact of `inbound`; the limit that stops it, if any
    (then nothing was counted and the model must not be called)."""
    now = clock()
    contact_id = inbound.conversation.profile.contact_id
    cap = settings.BUDGET_MONTHLY_SPEND_CAP
    if cap is not None and get_month_spend(now=now) >= cap:
        return Limit("monthly_spend", UsageWindow.Kind.NOTICE_SPEND, month_start(now))
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tokens = settings.BUDGET_TOKENS_PER_DAY
    if tokens and _window_count(contact_id, UsageWindow.Kind.TOKENS, day) >= tokens:
        return Limit("tokens_per_day", UsageWindow.Kind.NOTICE_TOKENS, day)
    per_minute = settings.BUDGET_REPLIES_PER_MINUTE
    if per_minute and not _take_reply(contact_id, now, limit=per_minute):
        return Limit(
            "replies_per_minute", UsageWindow.Kind.NOTICE_REPLIES, now.replace(minute=0, second=0, microsecond=0)
        )
    return None


def note_limit_reached(*, inbound: Message, limit: Limit) -> str | None:
    """Flag the conversation for staff; the notice for the customer, the first time only in the
    limit's period (None afterwards: the message goes unanswered by the bot)."""
    conversation = inbound.conversation
    if not _take(conversation.profile.contact_id, limit.notice_kind, limit.notice_period_start, limit=1):
        return None
    logger.warning("Conversation %s reached the %s limit.", conversation.pk, limit.name)
    with transaction.atomic():
        AuditEntry.objects.create(
            action="conversation.limit_reached",
            conversation=conversation,
            detail={"limit": limit.name, "message_id": inbound.pk},
        )
        flag_needs_human(conversation_id=conversation.pk, message_id=inbound.pk)
    return LIMIT_NOTICE


def move_usage(*, source_id: int, target_id: int) -> None:
    """Contacts merged: the merged contact's counters count for the one it joins (added up
    where both counted the same period), so a merge gives nobody a fresh budget."""
    source = UsageWindow.objects.filter(contact_id=source_id)
    periods = source.exclude(kind=UsageWindow.Kind.REPLIES)  # one row per period (the replies: per reply)
    target = UsageWindow.objects.filter(contact_id=target_id)
    counted_by_source = periods.filter(kind=OuterRef("kind"), starts_at=OuterRef("starts_at"))
    target.filter(Exists(counted_by_source)).update(count=F("count") + Subquery(counted_by_source.values("count")))
    periods.filter(Exists(target.filter(kind=OuterRef("kind"), starts_at=OuterRef("starts_at")))).delete()
    source.update(contact_id=target_id)


def _window_count(contact_id: int, kind: str, starts_at: datetime) -> int:
    found = UsageWindow.objects.filter(contact_id=contact_id, kind=kind, starts_at=starts_at)
    return found.values_list("count", flat=True).first() or 0


def _take_reply(contact_id: int, now: datetime, *, limit: int) -> bool:
    """Record one reply if the contact's replies of the last minute stay within `limit`. The
    contact's row lock makes the count and the new row one decision among concurrent workers
    (SQLite: its write lock, taken when the transaction starts)."""
    with transaction.atomic():
        list(Contact.objects.select_for_update(no_key=True).filter(pk=contact_id).values_list("pk"))
        recent = UsageWindow.objects.filter(
            contact_id=contact_id, kind=UsageWindow.Kind.REPLIES, starts_at__gt=now - timedelta(minutes=1)
        ).aggregate(replies=Sum("count"))["replies"]
        if (recent or 0) >= limit:
            return False
        UsageWindow.objects.create(contact_id=contact_id, kind=UsageWindow.Kind.REPLIES, starts_at=now, count=1)
    return True


def _take(contact_id: int, kind: str, starts_at: datetime, *, limit: int) -> bool:
    """Raise the period's count by one if it stays within `limit`: one UPDATE decides."""
    UsageWindow.objects.get_or_create(contact_id=contact_id, kind=kind, starts_at=starts_at)
    return bool(
        UsageWindow.objects.filter(contact_id=contact_id, kind=kind, starts_at=starts_at, count__lt=limit).update(
            count=F("count") + 1
        )
    )
