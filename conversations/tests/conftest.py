"""Fakes at the HTTP boundary only: the real openai, twilio and requests code runs.

OpenAI is a local HTTP server on 127.0.0.1 (pytest-httpserver) reached through
OPENAI_BASE_URL; the Graph API and Twilio's REST API are intercepted with `responses`, where
`requests` hands bytes to the network.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import pytest
import responses
from werkzeug import Request, Response

from whatsbot_project.celery import app as celery_app

from . import helpers


@pytest.fixture(autouse=True)
def eager_celery():
    """Tasks run in the calling thread and retries run at once.

    Exceptions are not propagated (Celery's eager retries only work that way); the task
    tracer logs them, and every test asserts on what was stored and sent.
    """
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def provider_settings(settings, fake_openai):
    settings.ALLOWED_HOSTS = ["testserver", "bot.example.com", "localhost", "127.0.0.1"]
    settings.WHATSAPP_APP_SECRET = helpers.APP_SECRET
    settings.WHATSAPP_VERIFY_TOKEN = helpers.VERIFY_TOKEN
    settings.WHATSAPP_ACCESS_TOKEN = "test-graph-token"
    settings.WHATSAPP_PHONE_NUMBER_ID = "110000000000001"
    settings.WHATSAPP_GRAPH_URL = helpers.GRAPH_URL
    settings.TWILIO_ACCOUNT_SID = helpers.TWILIO_SID
    settings.TWILIO_AUTH_TOKEN = helpers.TWILIO_TOKEN
    settings.TWILIO_API_URL = helpers.TWILIO_API_URL
    settings.PUBLIC_BASE_URL = helpers.PUBLIC_BASE_URL
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.OPENAI_MODEL = "gpt-test"
    settings.RETRY_BACKOFF_BASE_SECONDS = 0.01
    settings.SECURE_SSL_REDIRECT = False
    return settings


@dataclass
class FakeOpenAI:
    """Answers /v1/responses from a queue of (status, body, headers); records every request."""

    base_url: str
    default_text: str = "Hello! How can I help?"
    queue: deque = field(default_factory=deque)
    requests: list = field(default_factory=list)
    # Runs in the server thread while the model "thinks": what happens during a model call.
    during_request: Callable[[dict], None] | None = None

    def answer(self, text: str, **usage) -> None:
        self.queue.append((200, helpers.openai_response(text, **usage), {}))

    def fail(self, status: int, code: str, *, headers: dict | None = None, times: int = 1) -> None:
        for _ in range(times):
            self.queue.append((status, helpers.openai_error(status, code), headers or {}))

    def call_tool(self, name: str) -> None:
        """The next answer is only a function call (no text), as the model makes it."""
        body = helpers.openai_response("")
        body["output"] = [
            {"type": "function_call", "id": "fc_test", "call_id": "call_test", "name": name, "arguments": "{}"}
        ]
        self.queue.append((200, body, {}))

    def handle(self, request: Request) -> Response:
        self.requests.append(json.loads(request.get_data()))
        if self.during_request is not None:
            self.during_request(self.requests[-1])
        status, body, headers = (
            self.queue.popleft()
            if self.queue
            else (
                200,
                helpers.openai_response(self.default_text),
                {},
            )
        )
        return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


@pytest.fixture
def fake_openai(httpserver):
    fake = FakeOpenAI(base_url=httpserver.url_for("/v1"))
    httpserver.expect_request("/v1/responses", method="POST").respond_with_handler(fake.handle)
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


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        "alice", password="alice-password-123", is_staff=True, first_name="Alice", last_name="Staff"
    )


@pytest.fixture
def other_staff(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password-123", is_staff=True, first_name="Bob")
