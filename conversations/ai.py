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

from conversations.providers.base import RemoteDeletionError, parse_retry_after

logger = logging.getLogger(__name__)

OFFLINE_LABEL = "[offline responder]"
# OpenAI answers 429 for both "slow down" and "your spend limit is reached"; only the first
# is worth waiting for.
_PERMANENT_429_CODES = {"insufficient_quota", "billing_hard_limit_reached"}


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class ModelReply:
    text: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None


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
    try:
        response = client.responses.create(**request)
    except openai.APIStatusError as exc:
        raise _unavailable_from(exc) from exc
    except openai.APIConnectionError as exc:  # includes timeouts
        raise ModelUnavailable(type(exc).__name__, is_transient=True) from exc
    text = response.output_text.strip()
    if not text:
        raise ModelUnavailable(f"empty answer ({response.status})", is_transient=False)
    usage = response.usage
    return ModelReply(
        text=text,
        model=response.model,
        input_tokens=usage.input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
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


# --- Erasure (profiles/gdpr/remote.py): the copies OpenAI keeps of a person's conversation.


def list_conversation_item_ids(*, conversation_id: str) -> list[str]:
    """Every item id of an OpenAI conversation (all pages); [] when the conversation is gone."""
    try:
        return [item.id for item in _deletion_client().conversations.items.list(conversation_id, limit=100)]
    except openai.NotFoundError:
        return []
    except openai.APIError as exc:
        raise _deletion_error(exc) from exc


def delete_conversation_item(*, conversation_id: str, item_id: str) -> bool:
    """Delete one item; False when OpenAI no longer has it."""
    return _delete(lambda client: client.conversations.items.delete(item_id, conversation_id=conversation_id))


def delete_conversation(*, conversation_id: str) -> bool:
    """Delete the conversation itself (its items must go first: this does not delete them)."""
    return _delete(lambda client: client.conversations.delete(conversation_id))


def delete_stored_response(*, response_id: str) -> bool:
    """Delete a stored Responses API response; False when OpenAI no longer has it."""
    return _delete(lambda client: client.responses.delete(response_id))


def _deletion_client() -> openai.OpenAI:
    if is_offline():
        raise RemoteDeletionError(
            "OPENAI_API_KEY is unset: set it to delete the copies OpenAI holds", is_transient=False
        )
    return _client(settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL, settings.OPENAI_TIMEOUT_SECONDS)


def _delete(call) -> bool:
    try:
        call(_deletion_client())
    except openai.NotFoundError:
        return False
    except openai.APIError as exc:
        raise _deletion_error(exc) from exc
    return True


def _deletion_error(exc: openai.APIError) -> RemoteDeletionError:
    if isinstance(exc, openai.APIStatusError):
        unavailable = _unavailable_from(exc)
        return RemoteDeletionError(str(unavailable), is_transient=unavailable.is_transient)
    return RemoteDeletionError(type(exc).__name__, is_transient=True)
