"""With a connection pool (DATABASE_POOL_SIZE), a reply holds no database connection while the
model or the provider answers: hundreds of gevent slots then share a pool of a few (README,
Worker design)."""

from __future__ import annotations

import json

import pytest
import responses
from django.db import connection, connections

from conversations import dispatch
from conversations.models import Message
from conversations.services.inbound import record_pending_inbound
from conversations.services.replies import reply_to_message
from conversations.tests.fakes import GRAPH_MESSAGES

from .helpers import meta_body, post_meta

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """Nothing runs a task: the test replies itself, on this thread, outside any transaction."""
    monkeypatch.setattr(dispatch, "enqueue", lambda name, *args, **kwargs: True)


@pytest.fixture
def pooled(monkeypatch):
    """This connection as settings make it with DATABASE_POOL_SIZE=2 (Django's psycopg pool)."""
    if connection.vendor != "postgresql":
        pytest.skip("connection pools are PostgreSQL's: set DATABASE_URL")
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {**connection.settings_dict["OPTIONS"], "pool": True})
    yield
    connection.close()
    connection.close_pool()


def test_a_reply_gives_its_pooled_connection_back_while_the_model_and_the_provider_answer(
    client, fake_providers, fake_openai, pooled
):
    replying = connections["default"]  # this thread's: the fake model answers from another one
    held_by_the_reply = []
    fake_openai.during_request = lambda request: held_by_the_reply.append(replying.connection is not None)

    def accept_send(request):
        if json.loads(request.body).get("status") != "read":
            held_by_the_reply.append(replying.connection is not None)
        return 200, {}, json.dumps({"messages": [{"id": "wamid.OUT1"}]})

    fake_providers.add_callback(responses.POST, GRAPH_MESSAGES, callback=accept_send)
    post_meta(client, meta_body("text"))
    record_pending_inbound()
    inbound = Message.objects.get(author=Message.Author.CUSTOMER)

    reply_to_message(message_id=inbound.pk)

    assert held_by_the_reply == [False, False]  # the model call, then the send
    assert Message.objects.get(author=Message.Author.BOT).status == Message.Status.SENT


def test_without_a_pool_the_connection_stays_open_across_the_model_call(client, graph_ok, fake_openai):
    """A reconnect per network wait would cost more than it saves: only a pool is given back."""
    replying = connections["default"]
    held = []
    fake_openai.during_request = lambda request: held.append(replying.connection is not None)
    post_meta(client, meta_body("text"))
    record_pending_inbound()

    reply_to_message(message_id=Message.objects.get(author=Message.Author.CUSTOMER).pk)

    assert held == [True]
