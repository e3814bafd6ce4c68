"""The only module that talks to the model (OpenAI Responses API through the official SDK).

With no OPENAI_API_KEY an explicit offline responder answers instead, and labels its replies.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

import openai
import pydantic
from django.conf import settings
from openai.types.responses import EasyInputMessageParam, Response

from conversations.errors import RemoteDeletionError, parse_retry_after
from conversations.turns import Turn

logger = logging.getLogger(__name__)

OFFLINE_LABEL = "[offline responder]"
# OpenAI answers 429 for both "slow down" and "your spend limit is reached"; only the first
# is worth waiting for.
_PERMANENT_429_CODES = {"insufficient_quota", "billing_hard_limit_reached"}


@dataclass(frozen=True)
class ModelReply:
    text: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    wants_human: bool = False  # the customer asked for a person (the model called `request_human`)
    # What the customer said about themselves, when the model recorded it (`save_customer_details`).
    details: pydantic.BaseModel | None = None
    # Set when OpenAI keeps the response (OPENAI_STORE, or the Conversations API mode), so that an
    # erasure can delete it.
    stored_response_id: str = ""


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


DETAILS_TOOL_NAME = "save_customer_details"


@dataclass(frozen=True)
class DetailsTool:
    """Lets the model record structured facts from the customer's words in the same call as its
    answer (the customer's own details): the call's arguments, parsed into `schema`, come back
    as ModelReply.details."""

    schema: type[pydantic.BaseModel]
    description: str


@functools.cache
def _details_tool_definition(tool: DetailsTool) -> dict:
    # Built once: a strict JSON schema from pydantic takes milliseconds.
    function = openai.pydantic_function_tool(tool.schema, name=DETAILS_TOOL_NAME, description=tool.description)
    return {"type": "function", **function["function"]}


class ModelUnavailable(Exception):
    def __init__(self, reason: str, *, is_transient: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.is_transient = is_transient
        self.retry_after = retry_after


@contextmanager
def _model_errors() -> Iterator[None]:
    try:
        yield
    except openai.APIStatusError as exc:
        raise _unavailable_from(exc) from exc
    except openai.APIConnectionError as exc:  # includes timeouts
        raise ModelUnavailable(type(exc).__name__, is_transient=True) from exc


def is_offline() -> bool:
    return not settings.OPENAI_API_KEY


@functools.cache
def _client(api_key: str, base_url: str | None, timeout: float) -> openai.OpenAI:
    # max_retries=0: retries are ours (Celery, with backoff), so OPENAI_MAX_ATTEMPTS is the one cap.
    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)


def generate_reply(
    *, instructions: str, turns: list[Turn], conversation_id: str = "", details: DetailsTool | None = None
) -> ModelReply:
    """One model answer to the conversation so far; raises ModelUnavailable on failure.

    With `details`, the model may also record what the customer said about themselves. When it
    does so without answering yet (it waits for the call's result), the result goes back and
    the model answers in a second call: a second call only for the messages that carry details.
    """
    if is_offline():
        return _offline_reply(turns)
    client = _configured_client()
    request = {
        "model": settings.OPENAI_MODEL,
        "instructions": instructions,
        "input": [{"role": turn.role, "content": _content_of(turn)} for turn in turns],
        "store": settings.OPENAI_STORE,
        "max_output_tokens": settings.OPENAI_MAX_OUTPUT_TOKENS,
    }
    if settings.OPENAI_PROMPT_ID:
        request["prompt"] = {"id": settings.OPENAI_PROMPT_ID}
    if conversation_id:
        # The OpenAI conversation holds the context and appends to it, so it must be stored;
        # `auto` truncation drops its oldest items instead of failing once it outgrows the window.
        request.update(conversation=conversation_id, store=True, truncation="auto")
    tools = [REQUEST_HUMAN_TOOL] if settings.BOT_DETECTS_HUMAN_REQUESTS else []
    if details is not None:
        tools.append(_details_tool_definition(details))
    if tools:
        request["tools"] = tools
    response = _create_response(client, request)
    usages = [response.get("usage")]
    calls = [item for item in response.get("output") or [] if item.get("type") == "function_call"]
    wants_human = any(call.get("name") == REQUEST_HUMAN_TOOL["name"] for call in calls)
    recorded = [call for call in calls if call.get("name") == DETAILS_TOOL_NAME and details is not None]
    text = _output_text(response)
    if recorded and not wants_human and (not text or conversation_id):
        # The model waits to hear that the details were recorded before it answers (and in an
        # OpenAI conversation a call left without its output would fail the next turn).
        response = _answer_after_calls(client, request, calls, conversation_id)
        usages.append(response.get("usage"))
        text = _output_text(response)
    if not text and not wants_human:
        raise ModelUnavailable(f"empty answer ({response.get('status')})", is_transient=False)
    counted = [usage for usage in usages if usage]
    return ModelReply(
        text=text,
        model=response.get("model") or "",
        input_tokens=sum(usage.get("input_tokens") or 0 for usage in counted) if counted else None,
        output_tokens=sum(usage.get("output_tokens") or 0 for usage in counted) if counted else None,
        wants_human=wants_human,
        details=_parse_details(details, recorded[-1].get("arguments")) if details and recorded else None,
        stored_response_id=(response.get("id") or "") if request["store"] else "",
    )


def _create_response(client: openai.OpenAI, request: dict) -> dict:
    """POST /responses through the SDK's client (auth, base URL, timeouts, its errors) with the
    request as we built it, and its JSON as it came. `client.responses.create` would first
    walk our already wire-ready dict through its typed parameter transform and then build the
    typed Response: about 3 ms of CPU per call against 1 ms for this, on the reply of every
    message (bench/RESULTS.md)."""
    with _model_errors():
        response = client.post("/responses", body=request, cast_to=object)
    if not isinstance(response, dict):
        raise ModelUnavailable("the model's answer was not a JSON object", is_transient=True)
    return response


def _output_text(response: dict) -> str:
    """The answer's text, as the SDK's `Response.output_text` joins it."""
    return "".join(
        content.get("text") or ""
        for item in response.get("output") or []
        if item.get("type") == "message"
        for content in item.get("content") or []
        if content.get("type") == "output_text"
    ).strip()


def _answer_after_calls(client: openai.OpenAI, request: dict, calls: list[dict], conversation_id: str) -> dict:
    outputs = [{"type": "function_call_output", "call_id": call["call_id"], "output": "Recorded."} for call in calls]
    if conversation_id:
        request["input"] = outputs  # the conversation already holds the model's calls
    else:
        # The calls go back without their item ids: with store=false OpenAI keeps no item to refer to.
        made = [
            {"type": "function_call", "call_id": call["call_id"], "name": call["name"], "arguments": call["arguments"]}
            for call in calls
        ]
        request["input"] = [*request["input"], *made, *outputs]
    request["tool_choice"] = "none"
    return _create_response(client, request)


def _parse_details(details: DetailsTool, arguments: str) -> pydantic.BaseModel | None:
    try:
        return details.schema.model_validate_json(arguments or "{}")
    except pydantic.ValidationError as exc:
        logger.warning("The model recorded details that do not fit %s: %s", details.schema.__name__, exc)
        return None


def _content_of(turn: Turn) -> str | list[dict[str, str]]:
    if not turn.images:
        return turn.text
    text = [{"type": "input_text", "text": turn.text}] if turn.text else []
    return text + [{"type": "input_image", "image_url": url, "detail": "auto"} for url in turn.images]


def transcribe_audio(*, audio: IO[bytes], filename: str, content_type: str) -> str:
    """Speech to text in whatever language was spoken; raises ModelUnavailable on failure."""
    if is_offline():
        raise ModelUnavailable("no model configured to transcribe audio", is_transient=False)
    client = _configured_client()
    with _model_errors():
        transcription = client.audio.transcriptions.create(
            model=settings.OPENAI_TRANSCRIBE_MODEL, file=(filename, audio, content_type)
        )
    return transcription.text.strip()


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


# --- Conversation intelligence: summaries, the Conversations API.

SUMMARY_INSTRUCTIONS = (
    "You keep the running summary of a customer-service chat. Merge the summary so far with the "
    "new turns into one updated summary of at most 120 words: what the customer wants, facts "
    "given, promises made, open questions. Write it in the language of the chat. Never include "
    "links, ids or codes that are not the customer's own words."
)


def _configured_client() -> openai.OpenAI:
    return _client(settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL, settings.OPENAI_TIMEOUT_SECONDS)


def _usage(response: Response) -> tuple[int, int]:
    usage = response.usage
    return (usage.input_tokens, usage.output_tokens) if usage else (0, 0)


def summarize_turns(*, previous_summary: str, turns: list[Turn]) -> ModelReply:
    """A new rolling summary from the previous one and the turns to fold in."""
    transcript = "\n".join(f"{'Customer' if turn.role == 'user' else 'Assistant'}: {turn.text}" for turn in turns)
    with _model_errors():
        response = _configured_client().responses.create(
            model=settings.OPENAI_MODEL,
            instructions=SUMMARY_INSTRUCTIONS,
            input=f"Summary so far:\n{previous_summary or '(none)'}\n\nNew turns:\n{transcript}",
            store=False,
            max_output_tokens=settings.CONTEXT_SUMMARY_MAX_TOKENS,
        )
    text = response.output_text.strip()
    if not text:
        raise ModelUnavailable(f"empty summary ({response.status})", is_transient=False)
    return ModelReply(text, response.model, *_usage(response))


def create_conversation(*, turns: list[Turn] | None = None) -> str:
    """A new OpenAI conversation, seeded with up to 20 earlier turns; its id."""
    items: list[EasyInputMessageParam] = [
        {"type": "message", "role": turn.role, "content": turn.text} for turn in (turns or [])[-20:]
    ]
    with _model_errors():
        return _configured_client().conversations.create(items=items).id


def add_conversation_items(*, conversation_id: str, turns: list[Turn]) -> None:
    """Append messages written outside a model call (staff answers) to an OpenAI conversation."""
    items: list[EasyInputMessageParam] = [
        {"type": "message", "role": turn.role, "content": turn.text} for turn in turns
    ]
    with _model_errors():
        _configured_client().conversations.items.create(conversation_id, items=items)


# --- Erasure (gdpr/remote.py): the copies OpenAI keeps of a person's conversation.


def list_conversation_item_ids(*, conversation_id: str) -> list[str]:
    """Every item id of an OpenAI conversation (all pages); [] when the conversation is gone."""
    try:
        items = _deletion_client().conversations.items.list(conversation_id, limit=100)
        return [item.id for item in items if item.id]  # an item without an id cannot be deleted either
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
    return _configured_client()


def _delete(call: Callable[[openai.OpenAI], object]) -> bool:
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
