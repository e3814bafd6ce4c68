"""What model calls cost when they leave no stored reply (extraction, summaries, discarded replies)."""

from __future__ import annotations

from typing import Protocol

from conversations.models import Message, ModelUsage


class ModelAnswer(Protocol):
    """What a model call reports (ModelReply, ParsedAnswer); read only, as frozen dataclasses are."""

    @property
    def model(self) -> str: ...
    @property
    def input_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...


def record_model_usage(*, message: Message, purpose: ModelUsage.Purpose, answer: ModelAnswer) -> ModelUsage:
    """Store the tokens of one model call made for `message`'s conversation."""
    return ModelUsage.objects.create(
        conversation_id=message.conversation_id,
        message=message,
        purpose=purpose,
        model=answer.model,
        input_tokens=answer.input_tokens or 0,
        output_tokens=answer.output_tokens or 0,
    )
