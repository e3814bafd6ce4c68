"""A worker answers the messages it records in its own pool, without a broker round trip
(conversations/bootsteps.py LocalRuns), with a real Celery thread pool and timer."""

import logging
import threading
import time
from types import SimpleNamespace

import pytest
from celery.concurrency.thread import TaskPool
from celery.utils.timer2 import Timer

from conversations.bootsteps import LocalRuns
from conversations.dispatch import PROCESS_INBOUND
from conversations.models import Message
from telemetry import context
from whatsbot_project.celery import app as celery_app

from .fakes import GRAPH_MESSAGES
from .helpers import meta_body, meta_text, post_meta

# Real commits: the pool's threads answer through their own database connections.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published(monkeypatch):
    """The reply tasks published to the broker (still run: Celery is eager in the tests)."""
    task = celery_app.tasks[PROCESS_INBOUND]
    calls = []

    def apply_async(*args, **kwargs):
        calls.append(kwargs)
        return type(task).apply_async(task, *args, **kwargs)

    monkeypatch.setattr(task, "apply_async", apply_async)
    return calls


@pytest.fixture
def worker():
    """The step started as a gevent or thread pool worker starts it; stopped after the test.
    The timer wakes at least every 50 ms: its stop waits for the thread's next wake-up (with
    Celery's default of up to 2 s, a second of the suite's wall time)."""
    pool, timer = TaskPool(limit=2), Timer(max_interval=0.05)
    pool.start()
    step = LocalRuns(SimpleNamespace())
    step.start(SimpleNamespace(pool=pool, timer=timer))
    yield step
    step.stop(None)
    timer.stop()
    pool.stop()


def wait_until_sent(graph, worker: LocalRuns, timeout: float = 10.0) -> None:
    """Until Graph took `count` messages, then until the pool's runs are over: the test's
    queries wait, as SQLite's shared in-memory test database locks tables between connections."""
    deadline = time.monotonic() + timeout
    while not graph.sent(GRAPH_MESSAGES):
        if time.monotonic() > deadline:
            pytest.fail("not answered in time")
        time.sleep(0.05)
    worker.pool.executor.shutdown(wait=True)


def replies() -> list[Message]:
    return list(Message.objects.filter(author=Message.Author.BOT))


@pytest.mark.parametrize("burst_window", [0, 0.2])
def test_a_recorded_message_is_answered_in_the_pool_not_published(
    client, graph_ok, fake_openai, worker, published, settings, burst_window
):
    settings.BURST_WINDOW_SECONDS = burst_window  # after the window: started by the worker's timer

    assert post_meta(client, meta_body("text")).status_code == 200

    wait_until_sent(graph_ok, worker)
    assert published == []
    [reply] = replies()
    assert reply.status == Message.Status.SENT
    assert reply.in_reply_to.status == Message.Status.HANDLED


def test_a_local_runs_log_lines_carry_an_id_of_their_own_and_the_request_id(
    client, graph_ok, fake_openai, worker, settings
):
    """As a task's do (LOG_FORMAT=json reads these): operators follow one run, and one message."""
    settings.BURST_WINDOW_SECONDS = 0
    seen: list[tuple[str, str, str]] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:  # in the logging thread: its context
            seen.append((record.getMessage(), context.task_id.get(), context.request_id.get()))

    handler = Recorder()
    logging.getLogger("conversations").addHandler(handler)
    try:
        assert post_meta(client, meta_body("text")).status_code == 200
        wait_until_sent(graph_ok, worker)
    finally:
        logging.getLogger("conversations").removeHandler(handler)

    [(_, task, request)] = [line for line in seen if line[0].startswith("Sent message")]
    assert task and request


def test_without_a_free_slot_the_work_is_published(client, graph_ok, fake_openai, worker, published, settings):
    settings.BURST_WINDOW_SECONDS = 0
    release = threading.Event()
    worker.functions[PROCESS_INBOUND] = lambda message_id: release.wait(10)
    for _ in range(2):  # the pool's two slots, taken
        assert worker.take(PROCESS_INBOUND, (0,), None, "") is True
    try:
        assert post_meta(client, meta_body("text")).status_code == 200

        assert len(published) == 1  # and answered by the (eager) task
        assert len(replies()) == 1
    finally:
        release.set()


def test_a_retry_the_model_asks_for_is_published_as_the_next_attempt(
    client, graph_ok, fake_openai, worker, published, settings, caplog
):
    settings.BURST_WINDOW_SECONDS = 0
    fake_openai.fail(500, "server_error", times=2)

    assert post_meta(client, meta_text("Hello?", "wamid.RETRIED")).status_code == 200

    wait_until_sent(graph_ok, worker)
    assert len(replies()) == 1
    assert [call.get("retries") for call in published] == [1]
    # Counted on: attempts are limited (OPENAI_MAX_ATTEMPTS), and only the first takes the
    # contact's reply allowance and sends the read receipt.
    failures = [record.getMessage() for record in caplog.records if "failed (HTTP 500" in record.getMessage()]
    assert [failure.split(" for ")[0] for failure in failures] == ["Model call 1", "Model call 2"]
