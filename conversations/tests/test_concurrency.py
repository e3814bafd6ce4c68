"""Races that only a real database shows: run on PostgreSQL (DATABASE_URL), skipped on SQLite."""

import threading
from unittest.mock import patch

import pytest
from celery import current_app
from django.db import connection, connections

from conversations.dispatch import RECORD_INBOUND
from conversations.models import Message, ProcessedMessage
from conversations.services.sweep import requeue_stalled_messages
from conversations.tasks import process_inbound_message, record_inbound_message, send_outbound_message
from conversations.tests.fakes import GRAPH_MESSAGES

from .helpers import meta_body, post_meta

# Real commits: the racing threads each use their own connection.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency needs PostgreSQL: set DATABASE_URL (SQLite serialises every writer)")


def run_concurrently(target, times: int) -> list:
    barrier = threading.Barrier(times)
    results, errors = [], []

    def worker():
        try:
            barrier.wait()
            results.append(target())
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return results


def test_the_same_delivery_posted_ten_times_concurrently_is_answered_once(graph_ok, fake_openai):
    from django.test import Client

    body = meta_body("text")
    statuses = run_concurrently(lambda: post_meta(Client(), body).status_code, 10)

    assert statuses == [200] * 10
    assert ProcessedMessage.objects.count() == 1
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert Message.objects.filter(author=Message.Author.BOT).count() == 1
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1


def test_the_reply_task_run_concurrently_replies_once(client, graph_ok, fake_openai, settings):
    post_meta(client, meta_body("text"))
    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    Message.objects.filter(pk=inbound.pk).update(status=Message.Status.RECEIVED)
    Message.objects.filter(author=Message.Author.BOT).delete()

    run_concurrently(lambda: process_inbound_message.delay(inbound.pk), 8)

    assert Message.objects.filter(author=Message.Author.BOT).count() == 1
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 2  # the first reply, then exactly one more


def test_the_record_task_run_concurrently_records_once(client, graph_ok, fake_openai):
    task = current_app.tasks[RECORD_INBOUND]
    with patch.object(task, "apply_async"):  # the doorbell is lost: the row waits
        post_meta(client, meta_body("text"))
    processed = ProcessedMessage.objects.get()

    run_concurrently(lambda: record_inbound_message.delay(processed.pk), 8)

    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert Message.objects.filter(author=Message.Author.BOT).count() == 1
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1


def test_sweeps_and_send_tasks_racing_in_several_workers_send_each_stalled_message_once(client, graph_ok, settings):
    settings.SWEEP_REQUEUE_AFTER_SECONDS = 0
    post_meta(client, meta_body("text"))
    reply = Message.objects.get(author=Message.Author.BOT)
    stalled = [
        Message.objects.create(
            conversation=reply.conversation,
            direction=Message.Direction.OUTBOUND,
            author=Message.Author.STAFF,
            provider=reply.provider,
            text=f"Stalled message {number}",
            status=Message.Status.PENDING,
        )
        for number in range(6)
    ]

    def sweep_and_send() -> None:
        requeue_stalled_messages()
        for message in stalled:
            send_outbound_message.delay(message.pk)

    run_concurrently(sweep_and_send, 6)

    bodies = [sent["text"]["body"] for sent in graph_ok.sent(GRAPH_MESSAGES)]
    assert sorted(bodies[1:]) == [f"Stalled message {number}" for number in range(6)]
    assert set(Message.objects.filter(author=Message.Author.STAFF).values_list("status", flat=True)) == {"sent"}


def test_first_messages_of_one_number_on_two_channels_recorded_at_once_make_one_contact(client):
    from conversations.services.inbound import record_accepted
    from profiles.models import ClientProfile, Contact

    from .helpers import meta_text, post_twilio, twilio_params

    task = current_app.tasks[RECORD_INBOUND]
    rounds = 8
    with patch.object(task, "apply_async"):  # accepted only: the racing recorders below store them
        for n in range(rounds):
            digits = f"1555800{n:04d}"
            post_meta(client, meta_text("Hi on WhatsApp", f"wamid.RACE{n}", wa_id=digits, user_id=f"US.race{n}"))
            sid = f"SM{n:032d}"
            sms = {**twilio_params("sms_inbound"), "From": f"+{digits}", "MessageSid": sid, "SmsSid": sid}
            post_twilio(client, {**sms, "SmsMessageSid": sid, "Body": "Hi by SMS"})
    pending = list(ProcessedMessage.objects.order_by("pk").values_list("pk", flat=True))
    assert len(pending) == 2 * rounds

    with patch("conversations.services.inbound.enqueue_after_commit"):  # no replies: only the join races
        for n in range(rounds):
            pair = iter(pending[2 * n : 2 * n + 2])
            run_concurrently(lambda pair=pair: record_accepted(processed_id=next(pair)), 2)

    assert ClientProfile.objects.count() == 2 * rounds
    assert Contact.objects.count() == rounds
    for contact in Contact.objects.all():
        assert sorted(contact.identities.values_list("provider", flat=True)) == ["meta", "twilio"]
        assert {identity.phone_number for identity in contact.identities.all()} == {contact.phone_number}
