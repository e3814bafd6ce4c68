"""What model calls cost: the tokens of calls that leave no stored reply (extraction, summaries,
discarded replies), the price of every call from MODEL_PRICES, the contact's tokens of the day and
the month's spend that the budgets (services/budgets.py) read."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from conversations.models import Conversation, Message, ModelUsage, MonthlySpend, UsageWindow
from telemetry.prices import price_of

logger = logging.getLogger(__name__)


class ModelAnswer(Protocol):
    """What a model call reports (ModelReply, ParsedAnswer); read only, as frozen dataclasses are."""

    @property
    def model(self) -> str: ...
    @property
    def input_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...
    @property
    def cached_input_tokens(self) -> int: ...


def record_model_usage(*, message: Message, purpose: ModelUsage.Purpose, answer: ModelAnswer) -> ModelUsage | None:
    """Store the tokens and cost of one model call made for `message`'s conversation; None
    (nothing stored) once the conversation is gone (erased while the model answered)."""
    with transaction.atomic():
        # Locked: an erasure committing meanwhile makes this wait, then see the row gone.
        if not Conversation.objects.select_for_update().filter(pk=message.conversation_id).exists():
            logger.info("Conversation %s is gone; usage of a %s call not recorded.", message.conversation_id, purpose)
            return None
        return ModelUsage.objects.create(
            conversation_id=message.conversation_id,
            message=message,
            purpose=purpose,
            model=answer.model,
            input_tokens=answer.input_tokens or 0,
            output_tokens=answer.output_tokens or 0,
            cost=count_spend(conversation=message.conversation, answer=answer),
        )


def count_spend(*, conversation: Conversation, answer: ModelAnswer) -> Decimal | None:
    """Add a model call to its contact's tokens of the day and to the month's spend; its cost."""
    if not answer.model or answer.model == "offline":
        return None
    cost = price_of(
        model=answer.model,
        input_tokens=answer.input_tokens or 0,
        cached_input_tokens=answer.cached_input_tokens,
        output_tokens=answer.output_tokens or 0,
    )
    tokens = (answer.input_tokens or 0) + (answer.output_tokens or 0)
    now = timezone.now()
    if settings.BUDGET_TOKENS_PER_DAY and tokens:
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        contact_id = conversation.profile.contact_id
        UsageWindow.objects.get_or_create(contact_id=contact_id, kind=UsageWindow.Kind.TOKENS, starts_at=day)
        UsageWindow.objects.filter(contact_id=contact_id, kind=UsageWindow.Kind.TOKENS, starts_at=day).update(
            count=F("count") + tokens
        )
    if cost:
        month = month_start(now).date()
        MonthlySpend.objects.get_or_create(month=month)
        MonthlySpend.objects.filter(month=month).update(amount=F("amount") + cost)
    return cost


def get_month_spend(*, now: datetime | None = None) -> Decimal:
    """What the model cost this calendar month (UTC), in MODEL_PRICE_CURRENCY."""
    month = month_start(now or timezone.now()).date()
    return MonthlySpend.objects.filter(month=month).values_list("amount", flat=True).first() or Decimal(0)


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
