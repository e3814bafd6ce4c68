"""The only module that talks to the model (OpenAI Responses API through the official SDK).

With no OPENAI_API_KEY the reply service answers with the offline responder instead
(services/knowledge.py), labelled OFFLINE_LABEL. (knowledge/vector_store.py also imports
`openai`, for the files of the knowledge base's optional vector store.)

The SDK is imported by the functions that call it, not with this module: importing it takes
about 0.5 s, which every process loading the app (each `manage.py` command, the web server)
would pay though most never call the model. The Celery worker imports it before it forks
(whatsbot_project/celery.py), so a reply does not pay it either.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import pydantic
from django.conf import settings

from conversations.errors import RemoteDeletionError, parse_retry_after
from conversations.turns import Turn
from telemetry import metrics

if TYPE_CHECKING:
    import openai
    from openai.types.responses import EasyInputMessageParam, Response, ResponseFunctionToolCall, ResponseUsage

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
    # Of input_tokens, those OpenAI read from its prompt cache (billed at the cached price).
    cached_input_tokens: int = 0
    wants_human: bool = False  # the customer asked for a person (the model called `request_human`)
    # What the customer said about themselves, when the model recorded it (`save_customer_details`).
    details: pydantic.BaseModel | None = None
    # Set when OpenAI keeps the response (OPENAI_STORE, or the Conversations API mode), so that an
    # erasure can delete it.
    stored_response_id: str = ""
    # The responses OpenAI stored for earlier calls of the same turn (before the model's tool
    # calls were answered): nothing refers to them, so they are deleted at once.
    earlier_stored_response_ids: tuple[str, ...] = ()
    # Files of the knowledge base's vector store that the answer cites (file_search).
    cited_file_ids: tuple[str, ...] = ()
    # The knowledge base passages the answer used (knowledge.selectors.KnowledgeHit.source), for staff.
    sources: tuple[dict, ...] = ()
    # The hand-over function the model called (`transfer_to_billing`): the turn ends there and
    # the next agent answers; `open_outputs` are the outputs its call still needs (call id, text)
    # in the Conversations API mode, where OpenAI holds the call.
    handover: str = ""
    open_outputs: tuple[tuple[str, str], ...] = ()
    # The agent that wrote it (empty: the bot's default instructions).
    agent: str = ""


@dataclass(frozen=True)
class FunctionTool:
    """A function the model may call while it writes one reply: `run` gets the arguments and
    returns the text the model reads back, in the same turn. A hand-over ends the turn instead."""

    name: str
    description: str
    parameters: dict
    run: Callable[[dict], str]
    strict: bool = True
    is_handover: bool = False

    @property
    def definition(self) -> dict:
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": self.strict,
        }


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
    import openai

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
    import openai

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
    import openai

    # max_retries=0: retries are ours (Celery, with backoff), so OPENAI_MAX_ATTEMPTS is the one cap.
    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)


def generate_reply(
    *,
    instructions: str,
    turns: list[Turn],
    conversation_id: str = "",
    details: DetailsTool | None = None,
    functions: Sequence[FunctionTool] = (),
    model: str = "",
    open_outputs: Sequence[tuple[str, str]] = (),
) -> ModelReply:
    """One model answer to the conversation so far; raises ModelUnavailable on failure.

    With `details`, the model may also record what the customer said about themselves; with
    `functions`, it may call them (several per round: a search of the knowledge base, the
    business's HTTP tools). When it waits to hear back, the calls' outputs go back and it answers
    in a further call of the same reply turn: after a recording alone one call (no second call
    for a message without details or searches), after function calls at most
    OPENAI_MAX_TOOL_ROUNDS rounds, the last of which must answer. A hand-over function ends the
    turn at once (ModelReply.handover): the agent it names answers with its own instructions.
    `open_outputs` are the outputs a previous agent's hand-over call still needs.
    """
    from openai.types.responses import ResponseFunctionToolCall

    if is_offline():
        raise ModelUnavailable("no model configured (OPENAI_API_KEY is unset)", is_transient=False)
    client = _configured_client()
    request: dict[str, Any] = {
        "model": model or settings.OPENAI_MODEL,
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
        prior = [{"type": "function_call_output", "call_id": call, "output": out} for call, out in open_outputs]
        request["input"] = [*prior, *request["input"]]
    tools = [REQUEST_HUMAN_TOOL] if settings.BOT_DETECTS_HUMAN_REQUESTS else []
    if details is not None:
        tools.append(_details_tool_definition(details))
    tools += [function.definition for function in functions]
    if settings.KNOWLEDGE_VECTOR_STORE_ID:
        tools.append({"type": "file_search", "vector_store_ids": [settings.KNOWLEDGE_VECTOR_STORE_ID]})
    if tools:
        request["tools"] = tools
    runnable = {function.name: function for function in functions}
    response = _create_response(client, request)
    usages = [response.usage]
    recorded: list[ResponseFunctionToolCall] = []
    earlier: list[str] = []  # the stored responses of earlier rounds: erasure deletes them too
    rounds = 0
    handover: ResponseFunctionToolCall | None = None
    while True:
        calls = [item for item in response.output if isinstance(item, ResponseFunctionToolCall)]
        wants_human = any(call.name == REQUEST_HUMAN_TOOL["name"] for call in calls)
        handover = next((call for call in calls if call.name in runnable and runnable[call.name].is_handover), None)
        records = [call for call in calls if call.name == DETAILS_TOOL_NAME and details is not None]
        recorded += records
        to_run = [call for call in calls if call.name in runnable and not runnable[call.name].is_handover]
        text = response.output_text.strip()
        # It waits for what it asked to run; after a recording alone, when it has not answered yet
        # (and in an OpenAI conversation a call left without its output would fail the next turn).
        waits = bool(to_run) or bool(records and (not text or conversation_id))
        if wants_human or handover is not None or not waits or rounds >= settings.OPENAI_MAX_TOOL_ROUNDS:
            break
        rounds += 1
        outputs = {call.call_id: _run(runnable[call.name], call.arguments) for call in to_run}
        # After a recording alone, and in the last round, it answers with what it has.
        answer_now = not to_run or rounds == settings.OPENAI_MAX_TOOL_ROUNDS
        earlier.append(response.id or "")
        response = _answer_after_calls(client, request, calls, outputs, conversation_id, answer_now=answer_now)
        usages.append(response.usage)
    open_calls: tuple[tuple[str, str], ...] = ()
    if handover is not None:
        note = _run(runnable[handover.name], handover.arguments)
        # Every call of that response needs an output in an OpenAI conversation.
        open_calls = tuple((call.call_id, note if call is handover else "Not run.") for call in calls)
    elif not text and not wants_human:
        raise ModelUnavailable(f"empty answer ({response.status})", is_transient=False)
    counted = [usage for usage in usages if usage]
    return ModelReply(
        text=text,
        model=response.model or "",
        input_tokens=sum(usage.input_tokens for usage in counted) if counted else None,
        output_tokens=sum(usage.output_tokens for usage in counted) if counted else None,
        cached_input_tokens=sum(_cached(usage) for usage in counted),
        wants_human=wants_human,
        details=_parse_details(details, recorded[-1].arguments) if details and recorded else None,
        stored_response_id=(response.id or "") if request["store"] else "",
        earlier_stored_response_ids=tuple(filter(None, earlier)) if request["store"] else (),
        cited_file_ids=_cited_file_ids(response),
        handover=handover.name if handover is not None else "",
        open_outputs=open_calls if conversation_id else (),
    )


def _cached(usage: ResponseUsage) -> int:
    details = usage.input_tokens_details
    return (details.cached_tokens or 0) if details else 0


def _create_response(client: openai.OpenAI, request: dict[str, Any]) -> Response:
    """POST /responses through the SDK's client (auth, base URL, timeouts, its errors) with the
    request as we built it, parsed into the SDK's typed Response (function calls, usage). Not
    `client.responses.create`: its typed transform of an already wire-ready request costs 1.4 ms
    of CPU per call with one turn and 5.9 ms with 20 turns and 5 tools, against 0.6 and 0.8 ms
    for this, on every round of every reply (bench/responses_call.py)."""
    from openai.types.responses import Response

    with metrics.measure_model_call(model=request["model"], purpose="reply") as call, _model_errors():
        response = client.post("/responses", body=request, cast_to=Response)
        call.used(model=response.model, **dict(zip(_TOKEN_KINDS, _usage(response), strict=True)))
    return response


_TOKEN_KINDS = ("input_tokens", "output_tokens")


def _answer_after_calls(
    client: openai.OpenAI,
    request: dict[str, Any],
    calls: list[ResponseFunctionToolCall],
    outputs: dict[str, str],
    conversation_id: str,
    *,
    answer_now: bool,
) -> Response:
    """The next call of the reply turn, with an output for each of the model's calls (for a
    recording of details: "Recorded.")."""
    results = [
        {"type": "function_call_output", "call_id": call.call_id, "output": outputs.get(call.call_id, "Recorded.")}
        for call in calls
    ]
    if conversation_id:
        request["input"] = results  # the conversation already holds the model's calls
    else:
        # The calls go back without their item ids: with store=false OpenAI keeps no item to refer to.
        made = [
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments}
            for call in calls
        ]
        request["input"] = [*request["input"], *made, *results]
    if answer_now:
        request["tool_choice"] = "none"
    return _create_response(client, request)


def _run(function: FunctionTool, arguments: str | None) -> str:
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        return "The arguments were not a JSON object."
    try:
        return function.run(parsed)
    except Exception:  # a broken tool must not cost the customer the reply: the model explains
        logger.exception("Function %s failed.", function.name)
        return f"The {function.name} tool failed; tell the customer it is unavailable for now."


def _cited_file_ids(response: Response) -> tuple[str, ...]:
    """The knowledge base's vector store files the answer cites (file_search annotations)."""
    from openai.types.responses import ResponseOutputMessage

    cited: list[str] = []
    for item in response.output:
        if not isinstance(item, ResponseOutputMessage):
            continue
        for content in item.content:
            for annotation in getattr(content, "annotations", None) or []:
                file_id = getattr(annotation, "file_id", None)
                if annotation.type == "file_citation" and file_id and file_id not in cited:
                    cited.append(file_id)
    return tuple(cited)


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
    transcribing = metrics.measure_model_call(model=settings.OPENAI_TRANSCRIBE_MODEL, purpose="transcription")
    with transcribing, _model_errors():
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
    with metrics.measure_model_call(model=settings.OPENAI_MODEL, purpose="summary") as call, _model_errors():
        response = _configured_client().responses.create(
            model=settings.OPENAI_MODEL,
            instructions=SUMMARY_INSTRUCTIONS,
            input=f"Summary so far:\n{previous_summary or '(none)'}\n\nNew turns:\n{transcript}",
            store=False,
            max_output_tokens=settings.CONTEXT_SUMMARY_MAX_TOKENS,
        )
        call.used(model=response.model, **dict(zip(_TOKEN_KINDS, _usage(response), strict=True)))
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
    import openai

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
    import openai

    try:
        call(_deletion_client())
    except openai.NotFoundError:
        return False
    except openai.APIError as exc:
        raise _deletion_error(exc) from exc
    return True


def _deletion_error(exc: openai.APIError) -> RemoteDeletionError:
    import openai

    if isinstance(exc, openai.APIStatusError):
        unavailable = _unavailable_from(exc)
        return RemoteDeletionError(str(unavailable), is_transient=unavailable.is_transient)
    return RemoteDeletionError(type(exc).__name__, is_transient=True)
