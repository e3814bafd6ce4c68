"""End to end through real processes: daphne serving the webhook, a Celery worker on Redis.

Needs PostgreSQL (the processes share the test database) and the `redis-server` binary (a
private Redis is started, stopped and restarted here, so the machine's Redis is left alone).

Recovery (the slow ones): a worker SIGKILLed mid-send, and Redis restarted. Every reply must go
out exactly once and within RECOVERY_BUDGET_SECONDS of the restart, with the recovery settings
at their defaults (the sweep every 10 s, heartbeats every 5 s, stale after 15 s, waiting work
re-enqueued after 15 s). Only the provider timeout and the wait before an unknown send is
settled are shortened, so a send cut off between its marker and Graph (a window of
milliseconds) is settled within the test too. Graph is then a threaded fake that, like Meta,
sends a `sent` status webhook for every message it took, also when the sender died waiting.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from django.db import connection
from werkzeug import Response

from conversations.models import Message, ProcessedMessage
from systemtests.harness import free_port, wait_for_port

from .helpers import APP_SECRET, JSONHandler, meta_body, meta_signature, meta_text

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


class Processes:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.tmp_path / f"{name}.log", "wb")
        # A session of its own: the worker's embedded beat (-B) is a child, stopped and killed with it.
        self.running[name] = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill(process)

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        """SIGKILL to the process and its children, as a container's out-of-memory kill does."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
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


def child_env(redis_port: int, httpserver, *, notify: bool, **overrides: str) -> dict[str, str]:
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
        "SWEEP_REQUEUE_AFTER_SECONDS": "1",
        "INBOUND_NOTIFY": "true" if notify else "false",
        **overrides,
    }


def start_redis(processes: Processes, port: int) -> None:
    processes.start(
        "redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    )
    wait_for_port(port, None, 60, "redis-server")


def start_web(processes: Processes, env: dict[str, str]) -> int:
    port = free_port()
    processes.start(
        "web",
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "whatsbot_project.asgi:application"],
        env,
    )
    wait_for_port(port, None, 60, "daphne")
    return port


def start_worker(processes: Processes, env: dict[str, str], name: str = "worker") -> None:
    processes.start(
        name,
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


RECOVERY_BUDGET_SECONDS = 30.0
CUSTOMERS = 24
DELIVERED = {Message.Status.SENT, Message.Status.DELIVERED, Message.Status.READ}


class FakeGraph(ThreadingHTTPServer):
    """Takes each message after `delay` seconds, then sends its `sent` status to our webhook."""

    daemon_threads = True

    def __init__(self, *, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _GraphHandler)
        self.delay = delay
        self.webhook_url = ""
        self.lock = threading.Lock()
        self.taken: list[dict] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def take(self, body: dict) -> str:
        with self.lock:
            self.taken.append(body)
            return f"wamid.REAL{len(self.taken)}"

    def send_status(self, wamid: str, client_ref: str) -> None:
        body = json.loads(meta_body("status_sent"))
        status = body["entry"][0]["changes"][0]["value"]["statuses"][0]
        status.update(id=wamid, biz_opaque_callback_data=client_ref)
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(raw, APP_SECRET)}
        for _ in range(20):  # Meta retries a webhook that fails
            try:
                if requests.post(self.webhook_url, data=raw, headers=headers, timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)

    def sends_per_reply(self) -> Counter:
        with self.lock:
            return Counter(body.get("biz_opaque_callback_data", "") for body in self.taken)


class _GraphHandler(JSONHandler):
    server: FakeGraph

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("status") == "read":
            self.answer_json(200, {"success": True})
            return
        wamid = self.server.take(body)
        time.sleep(self.server.delay)
        try:
            self.answer_json(200, {"messaging_product": "whatsapp", "messages": [{"id": wamid}]})
        except OSError:
            pass  # the sender died waiting: the message is taken all the same, as at Meta
        threading.Thread(
            target=self.server.send_status, args=(wamid, body.get("biz_opaque_callback_data", "")), daemon=True
        ).start()


@pytest.fixture
def graph():
    server = FakeGraph(delay=1.5)
    yield server
    server.shutdown()


def recovery_env(redis_port: int, httpserver, graph: FakeGraph) -> dict[str, str]:
    return child_env(
        redis_port,
        httpserver,
        notify=True,
        WHATSAPP_GRAPH_URL=graph.url,
        WHATSAPP_TYPING_INDICATOR="false",
        # Production defaults for everything that decides the recovery time:
        SWEEP_INTERVAL_SECONDS="10",
        SWEEP_REQUEUE_AFTER_SECONDS="15",
        WORKER_HEARTBEAT_SECONDS="5",
        WORKER_HEARTBEAT_STALE_SECONDS="15",
        # Shortened: a send cut off between its marker and Graph is re-sent within the test.
        PROVIDER_TIMEOUT_SECONDS="3",
        UNKNOWN_LOOKUP_AFTER_SECONDS="8",
        UNKNOWN_RESEND_AFTER_SECONDS="8",
    )


def start_recovery_stack(processes: Processes, fake_upstreams, graph: FakeGraph) -> tuple[int, dict[str, str], int]:
    """Redis, a worker and the web with the recovery settings, Graph's statuses to that web: the
    Redis port, the environment and the web's port."""
    httpserver, _ = fake_upstreams
    redis_port = free_port()
    start_redis(processes, redis_port)
    env = recovery_env(redis_port, httpserver, graph)
    start_worker(processes, env)
    port = start_web(processes, env)
    graph.webhook_url = f"http://127.0.0.1:{port}/webhooks/meta/"
    return redis_port, env, port


def post_customers(port: int, first: int, count: int) -> None:
    for number in range(first, first + count):
        body = meta_text(
            f"Question {number}", f"wamid.CUSTOMER{number}", wa_id=f"1555000{number:04d}", user_id=f"US.{number:019d}"
        )
        response = requests.post(
            f"http://127.0.0.1:{port}/webhooks/meta/",
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)},
            timeout=10,
        )
        assert response.status_code == 200


def wait_for_worker_ready(processes: Processes, name: str) -> float:
    """When the worker logged that it is ready: the clock of recovery starts there (how long a
    Python process takes to start on a busy machine is not the recovery's)."""
    log = processes.tmp_path / f"{name}.log"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if " ready." in log.read_text(errors="replace"):
            return time.monotonic()
        time.sleep(0.1)
    pytest.fail(f"{name} did not start\n{processes.logs()}")


def wait_until_every_reply_is_sent(count: int, graph: FakeGraph, processes: Processes, *, since: float) -> float:
    """Seconds from `since` until `count` replies are sent; fails after the budget and a margin."""
    deadline = since + RECOVERY_BUDGET_SECONDS + 30
    while time.monotonic() < deadline:
        replies = Message.objects.filter(author=Message.Author.BOT)
        if replies.count() == count and all(status in DELIVERED for status in replies.values_list("status", flat=True)):
            return time.monotonic() - since
        time.sleep(0.25)
    statuses = Counter(Message.objects.filter(author=Message.Author.BOT).values_list("status", flat=True))
    pytest.fail(f"replies not all sent: {statuses}, Graph took {len(graph.taken)}\n{processes.logs()}")


def assert_each_reply_sent_exactly_once(graph: FakeGraph, count: int) -> None:
    uids = {str(uid) for uid in Message.objects.filter(author=Message.Author.BOT).values_list("uid", flat=True)}
    sends = graph.sends_per_reply()
    assert set(sends) == uids
    assert set(sends.values()) == {1}, {uid: n for uid, n in sends.items() if n != 1}
    assert len(uids) == count


@pytest.mark.slow
def test_a_worker_killed_mid_send_and_restarted_sends_every_reply_exactly_once_within_30_seconds(
    processes, fake_upstreams, graph
):
    _, env, port = start_recovery_stack(processes, fake_upstreams, graph)
    post_customers(port, 0, CUSTOMERS)

    deadline = time.monotonic() + 60
    while len(graph.taken) < 4 and time.monotonic() < deadline:  # sends in flight at Graph
        time.sleep(0.05)
    # SIGKILL: no shutdown, no acknowledgement, its claims left behind (its beat child too)
    processes.kill(processes.running.pop("worker"))
    restarted = time.monotonic()
    start_worker(processes, env, name="worker-restarted")  # the same Celery node name
    ready = wait_for_worker_ready(processes, "worker-restarted")

    elapsed = wait_until_every_reply_is_sent(CUSTOMERS, graph, processes, since=ready)

    print(f"\nWorker up {ready - restarted:.1f} s after its restart; every reply sent {elapsed:.1f} s later.")
    assert elapsed <= RECOVERY_BUDGET_SECONDS
    assert_each_reply_sent_exactly_once(graph, CUSTOMERS)


@pytest.mark.slow
def test_after_a_redis_restart_every_reply_is_sent_exactly_once_within_30_seconds(processes, fake_upstreams, graph):
    redis_port, _, port = start_recovery_stack(processes, fake_upstreams, graph)
    post_customers(port, 0, CUSTOMERS // 2)
    while len(graph.taken) < 2:  # work in flight when Redis goes
        time.sleep(0.05)

    processes.stop("redis")  # its queue and the workers' waiting tasks are lost
    post_customers(port, CUSTOMERS // 2, CUSTOMERS // 2)  # accepted while Redis is down
    time.sleep(2)
    start_redis(processes, redis_port)
    restarted = time.monotonic()

    elapsed = wait_until_every_reply_is_sent(CUSTOMERS, graph, processes, since=restarted)

    print(f"\nEvery reply sent {elapsed:.1f} s after Redis restarted.")
    assert elapsed <= RECOVERY_BUDGET_SECONDS
    assert_each_reply_sent_exactly_once(graph, CUSTOMERS)
