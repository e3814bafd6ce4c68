"""GDPR test fixtures. The conversations fakes (OpenAI server, Graph/Twilio `responses`, from the
`conversations.tests.fakes` plugin) are reused, and extended at the same HTTP boundary with the
deletion endpoints of OpenAI, Twilio and Graph."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest
import responses
from werkzeug import Request, Response

from conversations.tests import helpers

TWILIO_MESSAGE = re.compile(rf"{re.escape(helpers.TWILIO_API_URL)}/2010-04-01/Accounts/\w+/Messages/(\w+)\.json")
GRAPH_OBJECT = re.compile(rf"{re.escape(helpers.GRAPH_URL)}/v25\.0/(\d+)$")


@dataclass
class FakeOpenAIStore:
    """What OpenAI holds (conversations with items, stored responses); records every call in order."""

    conversations: dict[str, list[str]] = field(default_factory=dict)
    responses: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def handle(self, request: Request) -> Response:
        self.calls.append((request.method, request.path))
        parts = request.path.removeprefix("/v1/").split("/")
        if parts[0] == "responses" and request.method == "DELETE":
            if parts[1] not in self.responses:
                return _not_found()
            self.responses.discard(parts[1])
            return _json({"id": parts[1], "object": "response", "deleted": True})
        conversation = parts[1]
        if conversation not in self.conversations:
            return _not_found()
        items = self.conversations[conversation]
        if len(parts) == 3 and request.method == "GET":
            data = [_item(item_id) for item_id in items]
            return _json({"object": "list", "data": data, "has_more": False, "last_id": items[-1] if items else None})
        if len(parts) == 4 and request.method == "DELETE":
            if parts[3] not in items:
                return _not_found()
            items.remove(parts[3])
            return _json({"id": conversation, "object": "conversation", "created_at": 1767268800, "metadata": {}})
        if len(parts) == 2 and request.method == "DELETE":
            del self.conversations[conversation]
            return _json({"id": conversation, "object": "conversation.deleted", "deleted": True})
        return _not_found()


def _item(item_id: str) -> dict:
    return {
        "type": "message",
        "id": item_id,
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_text", "text": "Hi! What are your opening hours?"}],
    }


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _not_found() -> Response:
    return _json({"error": {"message": "Not found", "type": "invalid_request_error", "code": None}}, 404)


@pytest.fixture
def openai_store(httpserver, fake_openai):
    store = FakeOpenAIStore()
    for method in ("GET", "DELETE"):
        httpserver.expect_request(re.compile(r"^/v1/(conversations|responses)/.+"), method=method).respond_with_handler(
            store.handle
        )
    return store


@pytest.fixture
def twilio_deletions(fake_providers):
    """Twilio deletes message resources; sids listed in `in_flight` answer 20009 that many times first."""
    state = {"deleted": [], "in_flight": {}}

    def delete(request):
        sid = TWILIO_MESSAGE.match(request.url).group(1)
        if state["in_flight"].get(sid, 0) > 0:
            state["in_flight"][sid] -= 1
            body = {"code": 20009, "message": "Cannot delete message because it is in flight", "status": 409}
            return 409, {}, json.dumps(body)
        state["deleted"].append(sid)
        return 204, {}, ""

    fake_providers.add_callback(responses.DELETE, TWILIO_MESSAGE, callback=delete)
    return state


@pytest.fixture
def graph_deletions(fake_providers):
    deleted = []

    def delete(request):
        deleted.append(GRAPH_OBJECT.match(request.url).group(1))
        return 200, {}, json.dumps({"success": True})

    fake_providers.add_callback(responses.DELETE, GRAPH_OBJECT, callback=delete)
    return deleted
