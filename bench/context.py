"""Model input size over a long conversation: must stay flat (turn 300 within 1.5x of turn 10).

Replays a 300-turn conversation through the real services, Celery tasks (eager), the real
openai SDK and the real Graph sender, against a local fake of OpenAI and Graph on 127.0.0.1.
Prints the size of each reply's model input (instructions + input messages) in characters
and estimated tokens (characters / 4) at turns 10, 100 and 300, the ratio 300/10, and how many
summary calls kept it flat. Exit status 1 when the ratio exceeds 1.5.

    python bench/context.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TURNS = 300
CHECKPOINTS = (10, 100, 300)
MAX_RATIO = 1.5
SUMMARY_TEXT = (
    "The customer, a bakery owner in Turin, has been asking about wholesale flour orders, delivery days, "
    "prices per sack, invoices and a late order; we promised to check the invoice and confirm Tuesday "
    "deliveries. Open question: a discount for monthly orders. "
)


class FakeUpstream(BaseHTTPRequestHandler):
    """OpenAI's /v1/responses and Graph's /messages, answered locally; records reply inputs."""

    reply_inputs: list[int] = []
    summaries = 0

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.endswith("/messages"):
            return self._json({"messages": [{"id": f"wamid.BENCH{len(FakeUpstream.reply_inputs)}"}]})
        from conversations.ai import SUMMARY_INSTRUCTIONS

        if (body.get("text") or {}).get("format", {}).get("type") == "json_schema":
            info = {"first_name": "Marta", "last_name": None, "company": "Forno Marta", "email": None}
            return self._json(_response(json.dumps({**info, "declined": False}), body))
        if body.get("instructions") == SUMMARY_INSTRUCTIONS:
            FakeUpstream.summaries += 1
            return self._json(_response(SUMMARY_TEXT, body))
        size = len(body["instructions"]) + sum(len(item["content"]) for item in body["input"])
        FakeUpstream.reply_inputs.append(size)
        turn = len(FakeUpstream.reply_inputs)
        answer = f"Thanks for turn {turn}! **Yes**, we can do that. " + "Here are the details you asked for. " * 4
        return self._json(_response(answer.strip(), body))

    def _json(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _response(text: str, request: dict) -> dict:
    chars = len(json.dumps(request))
    return {
        "id": "resp_bench",
        "object": "response",
        "created_at": 1767269950,
        "status": "completed",
        "model": "gpt-bench",
        "output": [
            {
                "type": "message",
                "id": "msg_bench",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": chars // 4,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": len(text) // 4,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": chars // 4 + len(text) // 4,
        },
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    workdir = tempfile.mkdtemp(prefix="bench-context-")
    os.environ.update(
        DEBUG="true",
        DATABASE_URL=f"sqlite:///{workdir}/bench.sqlite3",
        OPENAI_API_KEY="sk-bench",
        OPENAI_BASE_URL=f"{base}/v1",
        OPENAI_MODEL="gpt-bench",
        WHATSAPP_GRAPH_URL=base,
        WHATSAPP_ACCESS_TOKEN="bench-token",
        WHATSAPP_TYPING_INDICATOR="false",
        LOG_LEVEL="ERROR",
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from whatsbot_project.celery import app as celery_app

    # Tasks run in the calling thread (as in the test suite): every reply is written before the
    # next message arrives.
    celery_app.conf.task_always_eager = True

    from conversations.models import Channel, Message, Provider
    from conversations.providers.base import InboundMessage
    from conversations.selectors.prompt import get_conversation_token_usage
    from conversations.services.inbound import record_inbound

    call_command("migrate", verbosity=0)
    topics = ["flour prices", "delivery on Tuesday", "an invoice", "a late order", "a monthly discount"]
    for turn in range(1, TURNS + 1):
        record_inbound(
            inbound=InboundMessage(
                provider=Provider.META,
                provider_message_id=f"wamid.BENCHIN{turn}",
                channel=Channel.META_WHATSAPP,
                business_address="110000000000001",
                external_user_id="US.BENCH",
                kind=Message.Kind.TEXT,
                text=f"Message {turn}: I have another question about {topics[turn % len(topics)]}, can you help?",
                phone_number="+15551234567",
            )
        )
    sizes = FakeUpstream.reply_inputs
    if len(sizes) != TURNS:
        print(f"expected {TURNS} replies, got {len(sizes)}")
        return 1
    print(
        f"window: last {settings.CONTEXT_MAX_MESSAGES} messages verbatim, "
        f"summary every {settings.CONTEXT_SUMMARY_BATCH} older ones"
    )
    for turn in CHECKPOINTS:
        chars = sizes[turn - 1]
        print(f"turn {turn:>3}: model input {chars:>6} chars  ~{chars // 4:>5} tokens")
    ratio = sizes[TURNS - 1] / sizes[9]
    print(f"ratio turn {TURNS} / turn 10: {ratio:.2f} (must be <= {MAX_RATIO})")
    print(f"largest input over all turns: {max(sizes)} chars; summary calls: {FakeUpstream.summaries}")
    conversation_id = Message.objects.values_list("conversation_id", flat=True).first()
    print(f"tokens recorded for the conversation: {get_conversation_token_usage(conversation_id=conversation_id)}")
    server.shutdown()
    return 0 if ratio <= MAX_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
