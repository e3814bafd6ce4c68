"""The worker's inbound recorder, woken by the PostgreSQL trigger's NOTIFY (PostgreSQL only)."""

import json
import threading
import time

import pytest
from django.db import connection

from conversations.models import Message, ProcessedMessage
from conversations.services import recorder as recorder_module
from conversations.services.recorder import CHANNEL, run_recorder
from conversations.tests.fakes import GRAPH_MESSAGES

from .helpers import meta_body, post_meta

# Real commits: the recorder thread LISTENs and records through its own connection.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("the recorder is woken by PostgreSQL NOTIFY: set DATABASE_URL")


@pytest.fixture
def notify(settings):
    settings.INBOUND_NOTIFY = True
    # Only a NOTIFY can wake the recorder within the tests' waits.
    settings.INBOUND_RECORDER_POLL_SECONDS = 60


@pytest.fixture
def recorder(notify):
    stop = threading.Event()
    thread = threading.Thread(target=run_recorder, kwargs={"stop": stop})

    def start() -> None:
        thread.start()

    yield start
    stop.set()
    with connection.cursor() as cursor:  # wakes it from its wait
        cursor.execute(f"NOTIFY {CHANNEL}")
    thread.join(timeout=10)
    assert not thread.is_alive()


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail("the recorder did not record the delivery in time")


def test_with_notify_the_webhook_only_accepts(client, notify):
    response = post_meta(client, meta_body("text"))

    assert response.status_code == 200
    assert ProcessedMessage.objects.get().pending is not None
    assert not Message.objects.exists()  # no task was published: the recorder's job


def test_a_running_recorder_is_woken_by_the_insert_and_the_message_answered(client, graph_ok, recorder):
    recorder()
    time.sleep(0.5)  # listening

    post_meta(client, meta_body("text"))

    wait_until(lambda: len(graph_ok.sent(GRAPH_MESSAGES)) == 1)
    assert ProcessedMessage.objects.get().pending is None
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert Message.objects.filter(author=Message.Author.BOT).count() == 1


def test_a_starting_recorder_records_what_waited_for_it(client, graph_ok, recorder):
    post_meta(client, meta_body("text"))
    post_meta(client, meta_body("batched_two_messages"))

    recorder()

    wait_until(lambda: len(graph_ok.sent(GRAPH_MESSAGES)) == 1)
    assert not ProcessedMessage.objects.filter(pending__isnull=False).exists()
    # Recorded together, in the order they arrived: as a burst, they get one reply, the newest's.
    customer = Message.objects.filter(author=Message.Author.CUSTOMER).order_by("id")
    assert [message.text for message in customer] == [
        "Hi! What are your opening hours?",
        "Hello?",
        "Anyone there? I need to change my booking.",
    ]
    assert {message.status for message in customer} == {Message.Status.HANDLED}
    [reply] = Message.objects.filter(author=Message.Author.BOT)
    assert reply.in_reply_to == customer.last()


def test_the_recorder_survives_losing_its_listening_connection(client, graph_ok, recorder):
    recorder()
    time.sleep(0.5)
    with connection.cursor() as cursor:  # as a PostgreSQL restart would
        cursor.execute(  # only this test database's listener: other runs and xdist workers have their own
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s AND datname = current_database()",
            [f"LISTEN {CHANNEL}"],
        )
        assert cursor.fetchone() == (True,)

    post_meta(client, meta_body("text"))

    wait_until(lambda: len(graph_ok.sent(GRAPH_MESSAGES)) == 1)
    assert ProcessedMessage.objects.get().pending is None


def test_messages_arriving_together_are_recorded_in_one_batch(client, graph_ok, recorder, settings, monkeypatch):
    settings.INBOUND_RECORDER_GATHER_SECONDS = 3.0  # the three posts below take far less
    batches = []

    def counted(**kwargs):
        count = record(**kwargs)
        if count:
            batches.append(count)
        return count

    record = recorder_module.record_pending_inbound
    monkeypatch.setattr(recorder_module, "record_pending_inbound", counted)
    # Another recorder on this test database (a real worker's that an earlier test is stopping)
    # may be listening too: wait for this one's LISTEN, or the posts beat it.
    others = listeners()
    recorder()
    wait_until(lambda: listeners() - others)

    for customer in range(3):  # three customers' first messages, one webhook each
        body = json.loads(meta_body("text"))
        value = body["entry"][0]["changes"][0]["value"]
        value["contacts"][0].update(wa_id=f"1555000{customer:04d}", user_id=f"US.{customer}")
        value["messages"][0].update(id=f"wamid.GATHERED{customer}", from_user_id=f"US.{customer}")
        value["messages"][0]["from"] = f"1555000{customer:04d}"
        assert post_meta(client, json.dumps(body).encode()).status_code == 200

    wait_until(lambda: sum(batches) == 3, timeout=20)
    assert batches == [3]
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 3  # each customer answered


def listeners() -> set[int]:
    """The backends whose last statement was the recorder's LISTEN on this database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE query = %s AND datname = current_database()",
            [f"LISTEN {CHANNEL}"],
        )
        return {pid for (pid,) in cursor.fetchall()}
