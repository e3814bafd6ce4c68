"""What model calls cost when they leave no stored reply (extraction, summaries, discarded replies)."""

from __future__ import annotations

import logging
from typing import Protocol

from django.db import transaction

from conversations.models import Conversation, Message, ModelUsage

logger = logging.getLogger(__name__)


class ModelAnswer(Protocol):
    """What a model call reports (ModelReply, ParsedAnswer); read only, as frozen dataclasses are."""

    @property
    def model(self) -> str: ...
    @property
    def input_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...


def record_model_usage(*, message: Message, purpose: ModelUsage.Purpose, answer: ModelAnswer) -> ModelUsage | None:
    """Store the tokens of one model call made for `message`'s conversation; None (nothing
    stored) once the conversation is gone (erased while the model answered)."""
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
        )
