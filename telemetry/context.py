"""The request, conversation and Celery task a log line or an outgoing task belongs to.

Context variables, so threads (Celery's thread pool, gunicorn's threads) and asyncio tasks each
see their own. The web sets the request id (ops/middleware.py), Celery carries it in a task
header to the tasks a request causes and sets the task id (whatsbot_project/celery.py); services
bind the conversation they work on. The JSON log formatter (telemetry/logs.py) reads them all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

request_id: ContextVar[str] = ContextVar("request_id", default="")
conversation_id: ContextVar[int | None] = ContextVar("conversation_id", default=None)
task_id: ContextVar[str] = ContextVar("task_id", default="")

# The header a request id travels in (in from a proxy, out to the client, into Celery tasks).
HEADER = "X-Request-ID"
TASK_HEADER = "whatsbot_request_id"
# A proxy's id is kept only when it looks like one: it ends up in every log line and task header.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def new_request_id(proposed: str | None = None) -> str:
    """`proposed` (from a proxy's header) when it is a plausible id, else a fresh one."""
    if proposed and _ACCEPTABLE.match(proposed):
        return proposed
    return uuid.uuid4().hex


Tokens = list[tuple[ContextVar, Token]]


def enter(*, request: str = "", conversation: int | None = None, task: str = "") -> Tokens:
    """A fresh context for one request or task (nothing leaks from the previous one on this
    thread); hand the result to `leave` when it ends."""
    return [
        (request_id, request_id.set(request)),
        (conversation_id, conversation_id.set(conversation)),
        (task_id, task_id.set(task)),
    ]


def leave(tokens: Tokens) -> None:
    for variable, token in reversed(tokens):
        variable.reset(token)


@contextmanager
def bound(*, request: str | None = None, conversation: int | None = None) -> Iterator[None]:
    """Within the block, the given request and conversation (None: as they are)."""
    tokens: Tokens = []
    if request is not None:
        tokens.append((request_id, request_id.set(request)))
    if conversation is not None:
        tokens.append((conversation_id, conversation_id.set(conversation)))
    try:
        yield
    finally:
        leave(tokens)


def bind_conversation(conversation: int | None) -> None:
    """The conversation the rest of this task or request works on (services call it)."""
    conversation_id.set(conversation)
