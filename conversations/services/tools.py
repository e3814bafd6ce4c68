"""The functions a reply's model may call, run and recorded: the business's HTTP tools
(configured in the admin, agents/), the knowledge search and the hand-overs between agents.

Every call becomes a ToolCall row, and every failure a short result the model can explain to
the customer (invalid arguments, a refused address, a time-out, an error status), never an
exception that would leave the customer without an answer. A tool that changes something runs
only when the customer has answered the bot's question about the very same call: the first call
is recorded as waiting for confirmation and returns an instruction to ask.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from agents.models import Tool
from agents.tools import ToolError, prepare_call, shape_result, truncate
from conversations import safe_http
from conversations.ai import FunctionTool
from conversations.connections import release_connection
from conversations.models import Message, ToolCall

logger = logging.getLogger(__name__)

# A recorded result longer than this is cut (HTTP tools cut at their own max_result_chars).
RECORD_MAX_CHARS = 2000
# An answer of a business API larger than this is refused: the model reads a few fields of it.
RESPONSE_MAX_BYTES = 1024 * 1024
# How long a question "shall I cancel order 123?" waits for the customer's yes.
CONFIRMATION_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Outcome:
    status: ToolCall.Status
    text: str
    http_status: int | None = None
    is_truncated: bool = False


@dataclass(frozen=True)
class CallContext:
    """Who calls: the customer message being answered and the agent answering it."""

    inbound: Message
    agent_name: str


def recorded(context: CallContext, name: str, run: Callable[[dict], Outcome]) -> Callable[[dict], str]:
    """`run` as a FunctionTool's run: each call timed and stored as a ToolCall."""

    def call(arguments: dict) -> str:
        started = time.monotonic()
        outcome = run(arguments)
        ToolCall.objects.create(
            conversation_id=context.inbound.conversation_id,
            message=context.inbound,
            agent_name=context.agent_name,
            tool_name=name,
            arguments=arguments,
            status=outcome.status,
            http_status=outcome.http_status,
            latency_ms=round((time.monotonic() - started) * 1000),
            result=truncate(outcome.text, RECORD_MAX_CHARS)[0],
            is_truncated=outcome.is_truncated,
        )
        logger.info("Tool %s called for message %s: %s.", name, context.inbound.pk, outcome.status)
        return outcome.text

    return call


def http_function(tool: Tool, context: CallContext) -> FunctionTool:
    """An HTTP tool as the model sees it. Its schema is not `strict` (staff write it for our
    own validation, which is stricter about formats than OpenAI's strict mode allows)."""
    return FunctionTool(
        tool.name,
        tool.description,
        tool.parameters,
        recorded(context, tool.name, lambda arguments: call_http_tool(tool=tool, arguments=arguments, context=context)),
        strict=False,
    )


def call_http_tool(*, tool: Tool, arguments: dict[str, Any], context: CallContext) -> Outcome:
    """Validate, confirm when it changes something, call through the SSRF guard, shape the answer."""
    try:
        prepared = prepare_call(tool, arguments)
    except ToolError as exc:
        return Outcome(ToolCall.Status.ERROR if exc.is_configuration else ToolCall.Status.INVALID, str(exc))
    if tool.changes_something and not _take_confirmation(tool, arguments, context.inbound):
        return Outcome(
            ToolCall.Status.NEEDS_CONFIRMATION,
            "Not done yet: this changes something. Tell the customer exactly what you will do and ask them "
            "to confirm; call this tool again with the same arguments only after they say yes.",
        )
    release_connection()  # while the business's API answers
    try:
        answer = safe_http.call_json_api(
            prepared.method,
            prepared.url,
            allowed_hosts=tool.allowed_hosts,
            headers=prepared.headers,
            timeout=tool.timeout_seconds,
            max_bytes=RESPONSE_MAX_BYTES,
            params=prepared.params,
            json_body=prepared.json,
        )
    except safe_http.UnsafeURL as exc:
        logger.warning("Tool %s refused: %s", tool.name, exc)
        return Outcome(ToolCall.Status.REFUSED, "Error: the service could not be reached. Tell the customer.")
    except safe_http.MediaFetchError as exc:
        if str(exc) == "timeout":
            return Outcome(ToolCall.Status.TIMEOUT, "Error: the service did not answer in time. Tell the customer.")
        logger.warning("Tool %s failed: %s", tool.name, exc)
        return Outcome(ToolCall.Status.ERROR, "Error: the service could not be reached. Tell the customer.")
    if answer.status >= 400:
        status = answer.status
        text = f"Error: the service answered HTTP {status}" + (" (not found)." if status == 404 else ".")
        return Outcome(ToolCall.Status.ERROR, text, http_status=status)
    text, is_truncated = shape_result(tool, answer.data)
    return Outcome(ToolCall.Status.OK, text, http_status=answer.status, is_truncated=is_truncated)


def _take_confirmation(tool: Tool, arguments: dict[str, Any], inbound: Message) -> bool:
    """True once: the bot asked about this very call while answering an earlier customer message,
    its model-written reply was stored (so the customer saw the question), and the customer wrote since. The
    question is then used up, however many times it was asked."""
    asked = ToolCall.objects.filter(
        conversation_id=inbound.conversation_id,
        tool_name=tool.name,
        status=ToolCall.Status.NEEDS_CONFIRMATION,
        message_id__lt=inbound.pk,
        # A reply the model wrote: an apology after a failed call asked nothing.
        message__replies__author=Message.Author.BOT,
        message__replies__model__gt="",
        created_at__gte=timezone.now() - CONFIRMATION_WINDOW,
    )
    same = [call.pk for call in asked.only("pk", "arguments") if call.arguments == arguments]
    return bool(
        same
        and ToolCall.objects.filter(pk__in=same, status=ToolCall.Status.NEEDS_CONFIRMATION).update(
            status=ToolCall.Status.CONFIRMED
        )
    )
