"""Limits on what customers cost: model replies per minute and tokens per day for each contact,
and a monthly spend cap for the whole account, from the MODEL_PRICES table.

A reply that would pass a limit is not sent to the model. The contact gets one polite notice per
limit and period (an hour for the reply rate, the day for tokens, the month for the cap), the
conversation is flagged for staff, and further messages in the period cost nothing. Limits reset
on their own: the counters are per period (UsageWindow, MonthlySpend), raised by conditional
UPDATEs so concurrent workers never pass a limit together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from conversations.models import AuditEntry, Message, UsageWindow
from conversations.services.handoff import flag_needs_human
from conversations.services.usage import get_month_spend, month_start

logger = logging.getLogger(__name__)

LIMIT_NOTICE = (
    "Thanks for your messages! I've reached the limit of what I can answer automatically for now, "
    "so a colleague will look at this conversation and reply to you here."
)


@dataclass(frozen=True)
class Limit:
    name: str  # replies_per_minute | tokens_per_day | monthly_spend
    notice_kind: UsageWindow.Kind
    notice_period_start: datetime


def take_reply_allowance(*, inbound: Message) -> Limit | None:
    """Count one model reply for the contact of `inbound`; the limit that stops it, if any
    (then nothing was counted and the model must not be called)."""
    now = timezone.now()
    profile_id = inbound.conversation.profile_id
    cap = settings.BUDGET_MONTHLY_SPEND_CAP
    if cap is not None and get_month_spend(now=now) >= cap:
        return Limit("monthly_spend", UsageWindow.Kind.NOTICE_SPEND, month_start(now))
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tokens = settings.BUDGET_TOKENS_PER_DAY
    if tokens and _window_count(profile_id, UsageWindow.Kind.TOKENS, day) >= tokens:
        return Limit("tokens_per_day", UsageWindow.Kind.NOTICE_TOKENS, day)
    per_minute = settings.BUDGET_REPLIES_PER_MINUTE
    minute = now.replace(second=0, microsecond=0)
    if per_minute and not _take(profile_id, UsageWindow.Kind.REPLIES, minute, limit=per_minute):
        return Limit(
            "replies_per_minute", UsageWindow.Kind.NOTICE_REPLIES, now.replace(minute=0, second=0, microsecond=0)
        )
    return None


def note_limit_reached(*, inbound: Message, limit: Limit) -> str | None:
    """Flag the conversation for staff; the notice for the customer, the first time only in the
    limit's period (None afterwards: the message goes unanswered by the bot)."""
    conversation = inbound.conversation
    if not _take(conversation.profile_id, limit.notice_kind, limit.notice_period_start, limit=1):
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


def _window_count(profile_id: int, kind: str, starts_at: datetime) -> int:
    found = UsageWindow.objects.filter(profile_id=profile_id, kind=kind, starts_at=starts_at)
    return found.values_list("count", flat=True).first() or 0


def _take(profile_id: int, kind: str, starts_at: datetime, *, limit: int) -> bool:
    """Raise the period's count by one if it stays within `limit`: one UPDATE decides."""
    UsageWindow.objects.get_or_create(profile_id=profile_id, kind=kind, starts_at=starts_at)
    return bool(
        UsageWindow.objects.filter(profile_id=profile_id, kind=kind, starts_at=starts_at, count__lt=limit).update(
            count=F("count") + 1
        )
    )
