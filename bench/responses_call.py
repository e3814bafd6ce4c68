"""CPU of one Responses API call in the SDK, without the network (httpx2.MockTransport): the
typed `client.responses.create(**request)`, a POST of the wire-ready request parsed into the
typed `Response` (what conversations/ai.py does), and a POST left as JSON.

    DJANGO_SETTINGS_MODULE=whatsbot_project.settings SECRET_KEY=x .venv/bin/python bench/responses_call.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx2
import openai
from openai.types.responses import Response

from conversations.tests.helpers import openai_response

BODY = json.dumps(openai_response("Hello! How can I help?")).encode()
CLIENT = openai.OpenAI(
    api_key="sk-bench",
    base_url="http://fake/v1",
    max_retries=0,
    http_client=openai.DefaultHttpxClient(
        transport=httpx2.MockTransport(
            lambda request: httpx2.Response(200, content=BODY, headers={"content-type": "application/json"})
        )
    ),
)


def tool(name: str) -> dict:
    schema = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}
    return {"type": "function", "name": name, "description": "d" * 200, "parameters": schema, "strict": False}


REQUESTS = {
    "1 turn, 1 tool": {
        "model": "gpt-5-mini",
        "instructions": "x" * 2000,
        "input": [{"role": "user", "content": "hello"}],
        "store": False,
        "max_output_tokens": 800,
        "tools": [tool("request_human")],
    },
    "20 turns, 5 tools": {
        "model": "gpt-5-mini",
        "instructions": "x" * 2000,
        "input": [{"role": ("user", "assistant")[i % 2], "content": "hello there " * 20} for i in range(20)],
        "store": False,
        "max_output_tokens": 800,
        "tools": [tool(f"tool_{i}") for i in range(5)],
    },
}


def main() -> None:
    for label, request in REQUESTS.items():
        calls = {
            "responses.create": lambda request=request: CLIENT.responses.create(**request).output_text,
            "post, typed Response": lambda request=request: (
                CLIENT.post("/responses", body=request, cast_to=Response).output_text
            ),
            "post, JSON": lambda request=request: CLIENT.post("/responses", body=request, cast_to=object)["output"],
        }
        for name, call in calls.items():
            for _ in range(50):
                call()
            started = time.process_time()
            for _ in range(1000):
                call()
            print(f"{label:18} {name:22} {(time.process_time() - started):.3f} ms CPU per call")


if __name__ == "__main__":
    main()
