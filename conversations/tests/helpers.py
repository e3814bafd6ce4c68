"""Test helpers: provider fixtures, the signatures Meta and Twilio would compute, fake answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlencode

FIXTURES = Path(__file__).parent / "fixtures"

APP_SECRET = "test-meta-app-secret"
VERIFY_TOKEN = "test-verify-token"
TWILIO_TOKEN = "test-twilio-auth-token"
TWILIO_SID = "ACe268443e43d93dab7ebef303bbe9642f"  # the account of the Twilio fixtures
PUBLIC_BASE_URL = "https://bot.example.com"
GRAPH_URL = "https://graph.test"
TWILIO_API_URL = "https://twilio.test"


def meta_body(name: str) -> bytes:
    """A Meta fixture's exact bytes: signatures are over bytes, never a re-serialised dict."""
    return (FIXTURES / "meta" / f"{name}.json").read_bytes()


def twilio_params(name: str) -> dict[str, str]:
    return json.loads((FIXTURES / "twilio" / f"{name}.json").read_text())


def meta_signature(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def twilio_signature(url: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    """Twilio's algorithm, written out independently of the SDK that verifies it."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def post_meta(client, body: bytes, *, signature: str | None = None):
    headers = {"HTTP_X_HUB_SIGNATURE_256": signature if signature is not None else meta_signature(body)}
    return client.post("/webhooks/meta/", data=body, content_type="application/json", **headers)


def post_twilio(client, params: dict[str, str], *, path: str = "/webhooks/twilio/", signature: str | None = None):
    if signature is None:
        signature = twilio_signature(PUBLIC_BASE_URL + path, params)
    # Form-encoded, as Twilio sends it (the test client would default to multipart).
    return client.post(
        path,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )


def openai_response(text: str, *, input_tokens: int = 42, output_tokens: int = 7) -> dict:
    """A Responses API answer as OpenAI serialises it."""
    return {
        "id": "resp_test",
        "object": "response",
        "created_at": 1767269950,
        "status": "completed",
        "model": "gpt-test",
        "output": [
            {
                "type": "message",
                "id": "msg_test",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


def openai_error(status: int, code: str, message: str = "error") -> dict:
    return {"error": {"message": message, "type": code, "param": None, "code": code}}


def meta_text(text: str, wamid: str, *, wa_id: str = "15551234567", user_id: str = "US.1000000000000000001") -> bytes:
    """The `text` fixture with other words, message id and (optionally) sender: a new customer message."""
    body = json.loads(meta_body("text"))
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0].update(wa_id=wa_id, user_id=user_id)
    message = value["messages"][0]
    message.update(id=wamid, text={"body": text})
    message.update({"from": wa_id, "from_user_id": user_id})
    return json.dumps(body).encode()


class JSONHandler(BaseHTTPRequestHandler):
    """The request handler of a provider faked on 127.0.0.1: JSON answers, no access log."""

    def answer_json(self, status: int, body: object) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass
