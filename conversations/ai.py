"""The only module that talks to the model (OpenAI Responses API through the official SDK).

With no OPENAI_API_KEY an explicit offline responder answers instead, and labels its replies.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Literal

import openai
from django.conf import settings

from conversations.providers.base import parse_retry_after

logger = logging.getLogger(__name__)

OFFLINE_LABEL = "[offline responder]"
# OpenAI answers 429 for both "slow down" and "your spend limit is reached"; only the first
# is worth waiting for.
_PERMANENT_429_CODES = {"insufficient_quota", "billing_hard_limit_reached"}


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant", "developer"]
    text: str


@dataclass(frozen=True)
class ModelReply:
    text: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    wants_human: bool = False  # the customer asked for a person (the model called `request_human`)


# Lets the model flag a request for a person that no keyword catches ("can I talk to someone?").
REQUEST_HUMAN_TOOL = {
    "type": "function",
    "name": "request_human",
    "description": (
        "Call this when the customer asks to talk to a person, a human agent or staff member, "
        "or clearly needs one. A colleague is then notified and will join the conversation."
    ),
    "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
    "strict": True,
}


class ModelUnavailable(Exception):
    def __init__(self, reason: str, *, is_transient: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.is_transient = is_transient
        self.retry_after = retry_after


def is_offline() -> bool:
    return not settings.OPENAI_API_KEY


@functools.cache
def _client(api_key: str, base_url: str | None, timeout: float) -> openai.OpenAI:
    # max_retries=0: retries are ours (Celery, with backoff), so OPENAI_MAX_ATTEMPTS is the one cap.
    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)


def generate_reply(*, instructions: str, turns: list[Turn]) -> ModelReply:
    """One model answer to the conversation so far; raises ModelUnavailable on failure."""
    if is_offline():
        return _offline_reply(turns)
    client = _client(settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL, settings.OPENAI_TIMEOUT_SECONDS)
    request = {
        "model": settings.OPENAI_MODEL,
        "instructions": instructions,
        "input": [{"role": turn.role, "content": turn.text} for turn in turns],
        "store": settings.OPENAI_STORE,
        "max_output_tokens": settings.OPENAI_MAX_OUTPUT_TOKENS,
    }
    if settings.OPENAI_PROMPT_ID:
        request["prompt"] = {"id": settings.OPENAI_PROMPT_ID}
    if settings.BOT_DETECTS_HUMAN_REQUESTS:
        request["tools"] = [REQUEST_HUMAN_TOOL]
    try:
        response = client.responses.create(**request)
    except openai.APIStatusError as exc:
        raise _unavailable_from(exc) from exc
    except openai.APIConnectionError as exc:  # includes timeouts
        raise ModelUnavailable(type(exc).__name__, is_transient=True) from exc
    text = response.output_text.strip()
    wants_human = any(
        item.type == "function_call" and item.name == REQUEST_HUMAN_TOOL["name"] for item in response.output
    )
    if not text and not wants_human:
        raise ModelUnavailable(f"empty answer ({response.status})", is_transient=False)
    usage = response.usage
    return ModelReply(
        text=text,
        model=response.model,
        input_tokens=usage.input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        wants_human=wants_human,
    )


def _unavailable_from(exc: openai.APIStatusError) -> ModelUnavailable:
    status = exc.status_code
    reason = f"HTTP {status} {exc.code or ''} (request {exc.request_id})".strip()
    retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
    if status == 429 and exc.code in _PERMANENT_429_CODES:
        logger.error("OpenAI refuses further calls: %s. Check the billing limits of the project.", reason)
        return ModelUnavailable(reason, is_transient=False)
    is_transient = status in (408, 409, 429) or status >= 500
    if not is_transient:
        logger.error("OpenAI rejected the request: %s", reason)
    return ModelUnavailable(reason, is_transient=is_transient, retry_after=retry_after)


def _offline_reply(turns: list[Turn]) -> ModelReply:
    last = next((turn.text for turn in reversed(turns) if turn.role == "user"), "")
    return ModelReply(
        text=(
            f"{OFFLINE_LABEL} No AI model is configured (OPENAI_API_KEY is unset), "
            f"so this is an automatic echo of your message: “{last}”"
        ),
        model="offline",
    )
