"""End to end through real processes: daphne serving the webhook, a Celery worker on Redis.

Needs PostgreSQL (the processes share the test database) and the `redis-server` binary (a
private Redis is started, stopped and restarted here, so the machine's Redis is left alone).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from django.db import connection
from werkzeug import Response

from conversations.models import Message, ProcessedMessage

from .helpers import APP_SECRET, meta_body, meta_signature

# Real commits: the daphne and Celery worker processes share the test database.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_BUDGET_SECONDS = 1.0


@pytest.fixture(autouse=True)
def needs_servers():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): the web and worker processes share the test database")
    if not shutil.which("redis-server"):
        pytest.skip("needs the redis-server binary to start, stop and restart a private Redis")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


class Processes:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.tmp_path / f"{name}.log", "wb")
        self.running[name] = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.tmp_path.glob("*.log"))

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


@pytest.fixture
def processes(tmp_path):
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture
def fake_upstreams(httpserver, fake_openai):
    """OpenAI (the suite's fake) and Graph for the child processes, on one local server."""
    sent = []

    def graph(request):
        body = json.loads(request.get_data())
        if body.get("status") == "read":  # the read receipt with typing indicator, not a message
            return Response(json.dumps({"success": True}), content_type="application/json")
        sent.append(body)
        return Response(json.dumps({"messages": [{"id": f"wamid.REAL{len(sent)}"}]}), content_type="application/json")

    fake_openai.default_text = "From the worker."
    httpserver.expect_request("/v25.0/110000000000001/messages", method="POST").respond_with_handler(graph)
    return httpserver, sent


def child_env(redis_port: int, httpserver, *, notify: bool) -> dict[str, str]:
    """The processes' environment; `notify` picks how a webhook wakes the worker: a PostgreSQL
    NOTIFY to its recorder (the default on PostgreSQL), or a record task through Redis."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    test_db_url = urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))
    return {
        **os.environ,
        "DATABASE_URL": test_db_url,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "SECRET_KEY": "test-only-secret-key-for-child-processes",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_ACCESS_TOKEN": "graph-token",
        "WHATSAPP_GRAPH_URL": httpserver.url_for("/"),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": httpserver.url_for("/v1"),
        "SWEEP_INTERVAL_SECONDS": "1",
        "SWEEP_STALE_AFTER_SECONDS": "1",
        "INBOUND_NOTIFY": "true" if notify else "false",
    }


def start_redis(processes: Processes, port: int) -> None:
    processes.start(
        "redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    )
    wait_for_port(port)


def start_web(processes: Processes, env: dict[str, str]) -> int:
    port = free_port()
    processes.start(
        "web",
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "whatsbot_project.asgi:application"],
        env,
    )
    wait_for_port(port)
    return port


def start_worker(processes: Processes, env: dict[str, str]) -> None:
    processes.start(
        "worker",
        [sys.executable, "-m", "celery", "-A", "whatsbot_project", "worker", "-B", "--pool", "threads",
         "--concurrency", "4", "--without-mingle", "--without-gossip", "--loglevel", "INFO",
         "--schedule", str(processes.tmp_path / "beat-schedule")],
        env,
    )  # fmt: skip


def post_webhook(port: int, name: str) -> tuple[requests.Response, float]:
    body = meta_body(name)
    started = time.monotonic()
    response = requests.post(
        f"http://127.0.0.1:{port}/webhooks/meta/",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)},
        timeout=10,
    )
    return response, time.monotonic() - started


def wait_for_sent_replies(count: int, processes: Processes, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Message.objects.filter(author=Message.Author.BOT, status=Message.Status.SENT).count() >= count:
            return
        time.sleep(0.2)
    pytest.fail(f"no reply recorded within {timeout}s\n{processes.logs()}")


def test_a_webhook_goes_through_redis_to_a_real_worker_and_out(processes, fake_upstreams):
    httpserver, sent = fake_upstreams
    redis_port = free_port()
    start_redis(processes, redis_port)
    env = child_env(redis_port, httpserver, notify=False)
    start_worker(processes, env)
    port = start_web(processes, env)

    response, _ = post_webhook(port, "text")

    assert response.status_code == 200
    wait_for_sent_replies(1, processes)
    reply = Message.objects.get(author=Message.Author.BOT)
    assert (reply.text, reply.provider_message_id) == ("From the worker.", "wamid.REAL1")
    assert [s["text"]["body"] for s in sent] == ["From the worker."]


def test_with_redis_down_the_webhook_answers_in_time_and_is_answered_once_redis_is_back(processes, fake_upstreams):
    httpserver, sent = fake_upstreams
    redis_port = free_port()
    env = child_env(redis_port, httpserver, notify=True)
    port = start_web(processes, env)  # Redis is not running

    response, elapsed = post_webhook(port, "text")

    assert response.status_code == 200
    assert elapsed < WEBHOOK_BUDGET_SECONDS, f"webhook took {elapsed:.2f}s with the broker down"
    # Accepted and durable: the parsed message waits in its dedup row for a worker.
    assert ProcessedMessage.objects.get().pending is not None

    start_redis(processes, redis_port)
    start_worker(processes, env)

    wait_for_sent_replies(1, processes)
    assert len(sent) == 1
    assert Message.objects.filter(author=Message.Author.BOT).count() == 1
