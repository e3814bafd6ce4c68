"""What one customer message costs the worker, in statements and broker publishes: recording it,
answering it, sending the answer (bench/e2e.py measures the CPU; these keep the counts down).

Transaction statements are not counted (SQLite's BEGIN and COMMIT go through the cursor,
PostgreSQL's do not)."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import dispatch
from conversations.models import Message
from conversations.providers import meta
from conversations.services.inbound import accept_inbound, record_pending_inbound
from conversations.services.replies import reply_to_message
from conversations.tests.fakes import GRAPH_MESSAGES

from .helpers import meta_body

pytestmark = pytest.mark.django_db

# A new customer's text message: its reply (knowledge retrieval included), the send after it.
REPLY_BUDGET = 12
# Any number of accepted deliveries, recorded together.
RECORD_BUDGET = 10


def statements(recording: CaptureQueriesContext) -> list[str]:
    """The statements that scale with messages. The outgoing webhooks' subscriptions are read at
    most once per process every few seconds (integrations/webhooks.py), whichever message comes
    first: that read is checked apart (at most one), not counted against the budget."""
    transaction = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
    sent = [query["sql"] for query in recording.captured_queries if not query["sql"].startswith(transaction)]
    subscriptions = [sql for sql in sent if '"integrations_webhookendpoint"' in sql]
    assert len(subscriptions) <= 1, subscriptions
    return [sql for sql in sent if sql not in subscriptions]


@pytest.fixture
def publishes(monkeypatch):
    published = []
    monkeypatch.setattr(dispatch, "enqueue", lambda name, *args, **kwargs: published.append(name) or True)
    return published


def accept(customer: int) -> None:
    body = json.loads(meta_body("text"))
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0].update(wa_id=f"1555000{customer:04d}", user_id=f"US.{customer}")
    value["messages"][0].update(id=f"wamid.BUDGET{customer}", **{"from": f"1555000{customer:04d}"})
    value["messages"][0]["from_user_id"] = f"US.{customer}"
    [inbound] = meta.parse_webhook(json.dumps(body).encode()).messages
    assert accept_inbound(inbound=inbound)


def test_a_reply_and_its_send_stay_within_the_budget_and_publish_nothing(graph_ok, fake_openai, publishes):
    accept(1)
    record_pending_inbound()
    message = Message.objects.get(author=Message.Author.CUSTOMER)
    publishes.clear()

    with CaptureQueriesContext(connection) as replying:
        reply_to_message(message_id=message.pk)

    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1
    assert Message.objects.get(author=Message.Author.BOT).status == Message.Status.SENT
    assert len(statements(replying)) <= REPLY_BUDGET, [sql[:80] for sql in statements(replying)]
    # No extraction task, no send task, no live-inbox event (no page is open).
    assert publishes == []


def test_a_batch_of_deliveries_is_recorded_in_as_many_statements_as_one(publishes):
    accept(1)
    with CaptureQueriesContext(connection) as one:
        assert record_pending_inbound() == 1
    for customer in range(2, 52):
        accept(customer)

    with CaptureQueriesContext(connection) as fifty:
        assert record_pending_inbound() == 50

    assert len(statements(one)) <= RECORD_BUDGET
    # Several conversations are locked first, in id order (one statement); SQLite splits the
    # INSERT of 50 messages (at most 999 parameters per statement).
    assert len(statements(fifty)) <= len(statements(one)) + 1 + (connection.vendor == "sqlite")
    assert Message.objects.filter(author=Message.Author.CUSTOMER).count() == 51
    assert publishes.count(dispatch.PROCESS_INBOUND) == 51  # each message's reply, nothing else
