"""Fakes at the HTTP boundary only: the real openai, twilio and requests code runs.

OpenAI is a local HTTP server on 127.0.0.1 (pytest-httpserver) reached through
OPENAI_BASE_URL; the Graph API and Twilio's REST API are intercepted with `responses`, where
`requests` hands bytes to the network.

A plugin (the root conftest.py lists it in `pytest_plugins`): every app's tests share these fixtures.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import pytest
import responses
from django.conf import settings as django_settings
from django.test import override_settings
from werkzeug import Request, Response

from accounts.roles import AGENT
from accounts.tests.helpers import make_staff
from conversations.ai import DETAILS_TOOL_NAME, SUMMARY_INSTRUCTIONS
from whatsbot_project.celery import app as celery_app

from . import helpers


@pytest.fixture(autouse=True)
def eager_celery(monkeypatch):
    """Tasks run in the calling thread and retries run at once.

    Exceptions are not propagated (Celery's eager retries only work that way); the task
    tracer logs them, and every test asserts on what was stored and sent.

    At once, a remote deletion's 100 retries (gdpr/tasks.py) would call a processor that keeps
    refusing 100 times back to back, some 3 s a test whose fakes do not answer deletions: here it
    gives up after three, as the task does after its hundredth (the beat sweep takes over).
    """
    from gdpr.tasks import delete_remote_copies

    monkeypatch.setattr(delete_remote_copies, "max_retries", 3)
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture(autouse=True, scope="session")
def provider_settings(make_httpserver):
    """The providers' settings, once for the session: they never change between tests (the fake
    OpenAI server is the session's), and pytest-django's `settings` adds an override per value
    assigned, each a layer every settings read of the test then walks through. A test's own
    changes (`settings.X = …`) still lie above these and are undone after it."""
    with override_settings(
        ALLOWED_HOSTS=["testserver", "bot.example.com", "localhost", "127.0.0.1"],
        WHATSAPP_APP_SECRET=helpers.APP_SECRET,
        WHATSAPP_VERIFY_TOKEN=helpers.VERIFY_TOKEN,
        WHATSAPP_ACCESS_TOKEN="test-graph-token",
        WHATSAPP_PHONE_NUMBER_ID="110000000000001",
        WHATSAPP_GRAPH_URL=helpers.GRAPH_URL,
        TWILIO_ACCOUNT_SID=helpers.TWILIO_SID,
        TWILIO_AUTH_TOKEN=helpers.TWILIO_TOKEN,
        TWILIO_API_URL=helpers.TWILIO_API_URL,
        PUBLIC_BASE_URL=helpers.PUBLIC_BASE_URL,
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=make_httpserver.url_for("/v1"),
        OPENAI_MODEL="gpt-test",
        RETRY_BACKOFF_BASE_SECONDS=0.01,
        # A media download retried sleeps 1 ms, then 3 (in the calling thread: 10 and 30 ms were
        # 135 sleeps, 2.7 s of the suite's wall time).
        MEDIA_RETRY_BACKOFF_SECONDS=0.001,
        # Off by default: tests that script the Graph responses of /messages must not have a
        # read receipt consume one; the typing-indicator tests switch it on.
        WHATSAPP_TYPING_INDICATOR=False,
        SECURE_SSL_REDIRECT=False,
        # Pages under test link the source files: the manifest storage needs `collectstatic`.
        STORAGES={
            **django_settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    ):
        yield


@dataclass
class FakeOpenAI:
    """Answers /v1/responses from a queue of (status, body, headers); records every request."""

    base_url: str
    default_text: str = "Hello! How can I help?"
    queue: deque = field(default_factory=deque)
    requests: list = field(default_factory=list)
    default_transcript: str = "Hello, this is a voice note."
    transcript_queue: deque = field(default_factory=deque)
    transcriptions: list = field(default_factory=list)  # {"form": {...}, "file": (name, type, bytes)}
    # Runs in the server thread while the model "thinks": what happens during a model call.
    during_request: Callable[[dict], None] | None = None

    def answer(self, text: str, **usage) -> None:
        self.queue.append((200, helpers.openai_response(text, **usage), {}))

    def fail(self, status: int, code: str, *, headers: dict | None = None, times: int = 1) -> None:
        for _ in range(times):
            self.queue.append((status, helpers.openai_error(status, code), headers or {}))

    def call_tool(self, name: str, arguments: dict | None = None, *, call_id: str = "call_test") -> None:
        """The next answer is only a function call (no text), as the model makes it."""
        body = helpers.openai_response("")
        body["output"] = [
            {
                "type": "function_call",
                "id": f"fc_{call_id}",
                "call_id": call_id,
                "name": name,
                "arguments": json.dumps(arguments or {}),
            }
        ]
        self.queue.append((200, body, {}))

    def call_tools(self, *calls: tuple[str, dict], text: str = "") -> None:
        """The next answer is several function calls at once (name, arguments), ids call_1…, and
        optionally some text."""
        body = helpers.openai_response(text)
        body["output"] = [
            {
                "type": "function_call",
                "id": f"fc_{index}",
                "call_id": f"call_{index}",
                "name": name,
                "arguments": json.dumps(arguments),
            }
            for index, (name, arguments) in enumerate(calls, start=1)
        ] + (body["output"] if text else [])
        self.queue.append((200, body, {}))

    # Summaries and the Conversations API are recorded apart from the reply requests, so tests
    # count each kind of call on its own. `extractions`: the reply requests the model answered
    # by recording the customer's details (they are in `requests` too).
    extractions: list = field(default_factory=list)
    summaries: list = field(default_factory=list)
    summary_queue: deque = field(default_factory=deque)
    conversations: list = field(default_factory=list)
    conversation_items: list = field(default_factory=list)

    def extract(self, *, declined: bool = False, **fields) -> None:
        """The next reply call records these details about the customer (fields not given are
        null) and, as the model does, waits for the call's result before it answers."""
        info = {name: fields.get(name) for name in ("first_name", "last_name", "company", "email")}
        body = helpers.openai_response("", input_tokens=30, output_tokens=12)
        body["output"] = [
            {
                "type": "function_call",
                "id": "fc_details",
                "call_id": "call_details",
                "name": DETAILS_TOOL_NAME,
                "arguments": json.dumps({**info, "declined": declined}),
            }
        ]
        self.queue.append((200, body, {}))

    def summarize(self, text: str, **usage) -> None:
        self.summary_queue.append((200, helpers.openai_response(text, **usage)))

    def fail_summary(self, status: int, code: str) -> None:
        self.summary_queue.append((status, helpers.openai_error(status, code)))

    def handle(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        if body.get("instructions") == SUMMARY_INSTRUCTIONS:
            self.summaries.append(body)
            status, answer = (
                self.summary_queue.popleft() if self.summary_queue else (200, helpers.openai_response("Summary."))
            )
            return _json(answer, status)
        self.requests.append(body)
        if self.during_request is not None:
            self.during_request(body)
        request_body = body
        status, body, headers = (
            self.queue.popleft()
            if self.queue
            else (
                200,
                helpers.openai_response(self.default_text),
                {},
            )
        )
        if any(item.get("name") == DETAILS_TOOL_NAME for item in body.get("output", [])):
            self.extractions.append(request_body)
        return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")

    def transcribe(self, text: str) -> None:
        self.transcript_queue.append((200, {"text": text, "usage": {"type": "duration", "seconds": 3}}))

    def fail_transcription(self, status: int, code: str, *, times: int = 1) -> None:
        for _ in range(times):
            self.transcript_queue.append((status, helpers.openai_error(status, code)))

    def handle_transcription(self, request: Request) -> Response:
        upload = request.files["file"]
        self.transcriptions.append(
            {"form": request.form.to_dict(), "file": (upload.filename, upload.content_type, upload.read())}
        )
        status, body = (
            self.transcript_queue.popleft() if self.transcript_queue else (200, {"text": self.default_transcript})
        )
        return Response(json.dumps(body), status=status, content_type="application/json")


@pytest.fixture(autouse=True)
def fake_openai(httpserver):
    """Every test's model calls are answered (by default: `default_text`)."""
    fake = FakeOpenAI(base_url=httpserver.url_for("/v1"))
    httpserver.expect_request("/v1/responses", method="POST").respond_with_handler(fake.handle)
    httpserver.expect_request("/v1/audio/transcriptions", method="POST").respond_with_handler(fake.handle_transcription)
    create, add_items = _conversations_api(fake)
    httpserver.expect_request("/v1/conversations", method="POST").respond_with_handler(create)
    httpserver.expect_request(re.compile(r"^/v1/conversations/[^/]+/items$"), method="POST").respond_with_handler(
        add_items
    )
    return fake


GRAPH_MESSAGES = f"{helpers.GRAPH_URL}/v25.0/110000000000001/messages"
TWILIO_MESSAGES = f"{helpers.TWILIO_API_URL}/2010-04-01/Accounts/{helpers.TWILIO_SID}/Messages.json"


@pytest.fixture
def fake_providers():
    """Graph and Twilio REST faked where `requests` meets the network."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.sent = lambda url: [_decode(c.request) for c in mock.calls if c.request.url.split("?")[0] == url]
        yield mock


def _decode(request) -> dict:
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    if request.headers.get("Content-Type", "").startswith("application/json"):
        return json.loads(body)
    return dict(parse_qsl(body))


@pytest.fixture
def graph_ok(fake_providers):
    counter = iter(range(1, 10_000))

    def accept(request):
        body = json.loads(request.body)
        if body.get("status") == "read":  # read receipt + typing indicator
            return 200, {}, json.dumps({"success": True})
        to = body.get("to") or body.get("recipient")
        return (
            200,
            {},
            json.dumps(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                    "messages": [{"id": f"wamid.OUT{next(counter)}"}],
                }
            ),
        )

    fake_providers.add_callback(responses.POST, GRAPH_MESSAGES, callback=accept)
    return fake_providers


@pytest.fixture
def twilio_ok(fake_providers):
    counter = iter(range(1, 10_000))

    def accept(request):
        sid = f"SM{next(counter):032d}"
        return 201, {}, json.dumps({"sid": sid, "status": "queued", "account_sid": helpers.TWILIO_SID})

    fake_providers.add_callback(responses.POST, TWILIO_MESSAGES, callback=accept)
    return fake_providers


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _conversations_api(fake: FakeOpenAI):
    def create(request: Request) -> Response:
        fake.conversations.append(json.loads(request.get_data() or b"{}"))
        conversation_id = f"conv_{len(fake.conversations)}"
        return _json({"id": conversation_id, "object": "conversation", "created_at": 1767269950, "metadata": {}})

    def add_items(request: Request) -> Response:
        conversation_id = request.path.split("/")[3]
        items = json.loads(request.get_data())["items"]
        fake.conversation_items.append((conversation_id, items))
        data = [
            {"type": "message", "id": f"msg_{i}", "status": "completed", "role": item["role"], "content": []}
            for i, item in enumerate(items)
        ]
        return _json({"object": "list", "data": data, "first_id": "msg_0", "last_id": "msg_0", "has_more": False})

    return create, add_items


@pytest.fixture
def staff_user(db):
    """An Agent: the live inbox's role (accounts/roles.py)."""
    return make_staff("alice", AGENT, password="alice-password-123", first_name="Alice", last_name="Staff")


@pytest.fixture
def other_staff(db):
    return make_staff("bob", AGENT, password="bob-password-123", first_name="Bob")
