"""No lost reply, no blind double send: the send state survives database errors and crashes,
and every `unknown` send is settled by a status, a lookup at the provider, or one re-send."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from datetime import timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.db import OperationalError, connection
from django.utils import timezone

from conversations.models import AuditEntry, Message, MessagePart, WorkerHeartbeat
from conversations.services.outbound import send_message
from conversations.services.sweep import INTERRUPTED, requeue_stalled_messages
from conversations.services.unknown import resolve_unknown_sends
from conversations.services.workers import beat
from conversations.tests.fakes import GRAPH_MESSAGES, TWILIO_MESSAGES
from whatsbot_project.celery import app as celery_app

from . import helpers
from .chat import graph_messages, say
from .helpers import meta_body, post_meta, post_twilio, twilio_params
from .test_split_sending import LONG_REPLY

pytestmark = pytest.mark.django_db

S = Message.Status
ACCEPTED = {"messaging_product": "whatsapp", "messages": [{"id": "wamid.ACCEPTED"}]}


class WorkerKilled(BaseException):
    """The worker process dies here: nothing after this line of ours runs."""


class DatabaseBlip:
    """Fails `failures` queries in a row once the send is claimed, from its first part's marker
    (the statement just before the provider call) on. A reply's claim commits with the reply
    (replies.py), so nothing of the send's own runs before that marker."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.armed = False

    def __call__(self, execute, sql, params, many, context):
        self.armed = self.armed or sql.replace('"', "").startswith("UPDATE conversations_messagepart SET attempted_at")
        if self.armed and self.failures:
            self.failures -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)


@pytest.fixture
def quick_recovery(settings):
    """Everything stalled is old enough to act on at once (the defaults wait seconds to minutes)."""
    settings.SWEEP_REQUEUE_AFTER_SECONDS = 0
    settings.UNKNOWN_LOOKUP_AFTER_SECONDS = 0
    settings.UNKNOWN_RESEND_AFTER_SECONDS = 0
    return settings


def bot_reply() -> Message:
    return Message.objects.get(author=Message.Author.BOT)


def staff_message(text: str) -> Message:
    """A message waiting to be sent in the one conversation there is."""
    reply = bot_reply()
    return Message.objects.create(
        conversation=reply.conversation,
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.STAFF,
        provider=reply.provider,
        text=text,
        status=S.PENDING,
    )


# --- Before the provider call nothing is in flight: a failure there is retried, never lost.


def test_a_database_error_between_the_claim_and_the_provider_call_is_retried_and_sent_once(client, graph_ok):
    with connection.execute_wrapper(DatabaseBlip(failures=1)):
        post_meta(client, meta_body("text"))

    reply = bot_reply()
    assert len(graph_messages(graph_ok, GRAPH_MESSAGES)) == 1
    assert (reply.status, reply.send_attempts, reply.provider_message_id) == (S.SENT, 2, "wamid.OUT1")


def test_a_database_outage_that_outlasts_the_release_leaves_the_send_to_the_sweep_which_sends_it_once(
    client, graph_ok, quick_recovery
):
    # The part cannot even be marked, nor the claim given back: the task gives up.
    with connection.execute_wrapper(DatabaseBlip(failures=2)):
        post_meta(client, meta_body("text"))
    reply = bot_reply()
    assert (reply.status, graph_messages(graph_ok, GRAPH_MESSAGES)) == (S.SENDING, [])
    assert not reply.parts.filter(attempted_at__isnull=False).exists()

    counts = requeue_stalled_messages()

    reply.refresh_from_db()
    assert (counts["outbound"], counts["unknown"]) == (1, 0)
    assert reply.status == S.SENT
    assert len(graph_messages(graph_ok, GRAPH_MESSAGES)) == 1


def test_a_claim_whose_worker_died_before_the_marker_is_sent_once(client, graph_ok, quick_recovery):
    post_meta(client, meta_body("text"))
    message = staff_message("We open at nine.")
    Message.objects.filter(pk=message.pk).update(status=S.SENDING, claimed_by="celery@gone")

    requeue_stalled_messages()

    message.refresh_from_db()
    assert message.status == S.SENT
    assert [m["text"]["body"] for m in graph_messages(graph_ok, GRAPH_MESSAGES)][1:] == ["We open at nine."]


# --- After the marker the part may have reached the provider: unknown, then settled.


def test_a_worker_killed_after_the_marker_leaves_a_send_the_sweep_marks_unknown_and_never_resends_blindly(
    client, fake_providers, quick_recovery
):
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json=ACCEPTED)
    post_meta(client, meta_body("text"))
    message = staff_message("We open at nine.")
    quick_recovery.UNKNOWN_RESEND_AFTER_SECONDS = 300
    fake_providers.add_callback(responses.POST, GRAPH_MESSAGES, callback=kill_the_worker)

    with pytest.raises(WorkerKilled):
        send_message(message_id=message.pk)
    counts = requeue_stalled_messages()
    outcome = resolve_unknown_sends()

    message.refresh_from_db()
    assert (counts["unknown"], outcome) == (1, {"waiting": 1})
    assert (message.status, message.error_title) == (S.UNKNOWN, INTERRUPTED)
    assert len(fake_providers.sent(GRAPH_MESSAGES)) == 2  # the first reply, and this one once


def kill_the_worker(request):
    raise WorkerKilled


def test_a_meta_send_with_a_late_status_is_settled_by_it_without_a_resend(client, fake_providers, quick_recovery):
    fake_providers.add(responses.POST, GRAPH_MESSAGES, body=requests.ReadTimeout("read timed out"))
    post_meta(client, meta_body("text"))
    reply = bot_reply()
    assert reply.status == S.UNKNOWN

    post_meta(client, status_body(reply, wamid="wamid.LATE", status="sent"))
    outcome = resolve_unknown_sends()

    reply.refresh_from_db()
    assert (reply.status, reply.provider_message_id, outcome) == (S.SENT, "wamid.LATE", {})
    assert reply.parts.get().provider_message_id == "wamid.LATE"
    assert len(fake_providers.sent(GRAPH_MESSAGES)) == 1


def test_a_meta_send_without_a_status_waits_for_the_grace_period(client, fake_providers, quick_recovery):
    quick_recovery.UNKNOWN_RESEND_AFTER_SECONDS = 300
    fake_providers.add(responses.POST, GRAPH_MESSAGES, body=requests.ReadTimeout("read timed out"))
    post_meta(client, meta_body("text"))

    assert resolve_unknown_sends() == {"waiting": 1}
    assert bot_reply().status == S.UNKNOWN
    assert len(fake_providers.sent(GRAPH_MESSAGES)) == 1


def test_a_meta_send_without_a_status_past_the_grace_period_is_resent_once_and_the_decision_recorded(
    client, fake_providers, quick_recovery, caplog
):
    fake_providers.add(responses.POST, GRAPH_MESSAGES, body=requests.ReadTimeout("read timed out"))
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json=ACCEPTED)
    post_meta(client, meta_body("text"))

    with caplog.at_level(logging.WARNING, logger="conversations.services.unknown"):
        first = resolve_unknown_sends()
        second = resolve_unknown_sends()

    reply = bot_reply()
    sent = fake_providers.sent(GRAPH_MESSAGES)
    assert (first, second) == ({"resent": 1}, {})
    assert [body["text"]["body"] for body in sent] == [reply.text, reply.text]
    assert (reply.status, reply.resend_count, reply.error_code) == (S.SENT, 1, "resent")
    assert reply.error_title == "Re-sent once: no status from WhatsApp (Meta) within 0 s"
    audit = AuditEntry.objects.get(action="message.resent")
    assert audit.detail == {"message_id": reply.pk, "part": 0, "reason": "no status from WhatsApp (Meta) within 0 s"}
    assert sum("re-sent once" in record.getMessage() for record in caplog.records) == 1


def test_a_resent_message_whose_outcome_is_unknown_again_is_left_to_staff_never_sent_a_third_time(
    client, fake_providers, quick_recovery, caplog
):
    fake_providers.add(responses.POST, GRAPH_MESSAGES, body=requests.ReadTimeout("read timed out"))
    post_meta(client, meta_body("text"))

    with caplog.at_level(logging.ERROR, logger="conversations.services.unknown"):
        outcomes = [resolve_unknown_sends() for _ in range(3)]

    reply = bot_reply()
    assert outcomes == [{"resent": 1}, {"unresolved": 1}, {}]
    assert len(fake_providers.sent(GRAPH_MESSAGES)) == 2
    assert (reply.status, reply.error_code) == (S.UNKNOWN, "unresolved")
    assert reply.error_title == "Outcome unknown, also after one re-send: check with the customer"
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_a_split_reply_in_doubt_on_an_early_part_is_settled_by_that_parts_status_and_never_repeats_it(
    client, fake_providers, fake_openai, quick_recovery
):
    fake_openai.answer(LONG_REPLY)
    fake_providers.add(responses.POST, GRAPH_MESSAGES, body=requests.ReadTimeout("read timed out"))
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json={"messages": [{"id": "wamid.P2"}]})
    say(client, "Tell me everything")
    reply = bot_reply()
    assert reply.status == S.UNKNOWN

    post_meta(client, status_body(reply, wamid="wamid.P1", status="sent", client_ref=f"{reply.uid}#0"))
    outcome = resolve_unknown_sends()

    reply.refresh_from_db()
    bodies = [body["text"]["body"] for body in fake_providers.sent(GRAPH_MESSAGES)]
    assert outcome == {"continued": 1}
    assert len(bodies) == 2 and bodies[0] != bodies[1]
    assert (reply.status, reply.provider_message_id) == (S.SENT, "wamid.P2")
    assert list(reply.parts.values_list("provider_message_id", flat=True)) == ["wamid.P1", "wamid.P2"]


def status_body(message: Message, *, wamid: str, status: str, client_ref: str | None = None) -> bytes:
    body = json.loads(meta_body(f"status_{status}"))
    entry = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    entry.update(id=wamid, biz_opaque_callback_data=client_ref or str(message.uid))
    return json.dumps(body).encode()


# --- Twilio can be asked: found means recorded, proven absent means one re-send.


class TwilioAccount:
    """The Messages resource of a Twilio account at the HTTP boundary: create and list."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.messages: list[dict] = []  # newest last
        self.kill_worker: str | None = None  # "before" or "after" the message is created
        mock.add_callback(responses.POST, TWILIO_MESSAGES, callback=self.create)
        mock.add_callback(responses.GET, TWILIO_MESSAGES, callback=self.list)

    def create(self, request):
        if self.kill_worker == "before":
            raise WorkerKilled
        form = parse_qs(request.body)
        created = {
            "sid": f"SM{len(self.messages) + 1:032d}",
            "to": form["To"][0],
            "from": form["From"][0],
            "body": form.get("Body", [""])[0],
            "status": "queued",
            "direction": "outbound-api",
            "date_created": format_datetime(timezone.now()),
            "account_sid": helpers.TWILIO_SID,
        }
        self.messages.append(created)
        if self.kill_worker == "after":
            raise WorkerKilled
        return 201, {}, json.dumps(created)

    def list(self, request):
        query = parse_qs(urlsplit(request.url).query)
        matching = [m for m in reversed(self.messages) if m["to"] == query["To"][0] and m["from"] == query["From"][0]]
        page = {"messages": matching, "next_page_uri": None, "page": 0, "page_size": 50, "uri": request.path_url}
        return 200, {}, json.dumps(page)

    def bodies(self) -> list[str]:
        return [m["body"] for m in self.messages]


@pytest.fixture
def twilio_account(fake_providers):
    return TwilioAccount(fake_providers)


def test_a_twilio_send_in_doubt_that_twilio_has_is_recorded_from_the_lookup_without_a_resend(
    client, twilio_account, quick_recovery
):
    post_twilio(client, twilio_params("whatsapp_text"))
    message = staff_message("We open at nine.")
    twilio_account.kill_worker = "after"

    with pytest.raises(WorkerKilled):
        send_message(message_id=message.pk)
    twilio_account.kill_worker = None
    requeue_stalled_messages()
    outcome = resolve_unknown_sends()

    message.refresh_from_db()
    created = twilio_account.messages[-1]
    assert outcome == {"found": 1}
    assert twilio_account.bodies().count("We open at nine.") == 1
    assert (message.status, message.provider_message_id, message.resend_count) == (S.SENT, created["sid"], 0)
    assert message.parts.get().provider_message_id == created["sid"]


def test_a_twilio_send_in_doubt_that_twilio_never_got_is_resent_exactly_once(client, twilio_account, quick_recovery):
    post_twilio(client, twilio_params("whatsapp_text"))
    # The same words as the reply before it: that message is ours already, never taken for this one.
    message = staff_message(bot_reply().text)
    twilio_account.kill_worker = "before"

    with pytest.raises(WorkerKilled):
        send_message(message_id=message.pk)
    twilio_account.kill_worker = None
    requeue_stalled_messages()
    outcomes = [resolve_unknown_sends(), resolve_unknown_sends()]

    message.refresh_from_db()
    assert outcomes == [{"resent": 1}, {}]
    assert twilio_account.bodies() == [message.text, message.text]  # the first reply, then this one once
    assert (message.status, message.resend_count, message.error_code) == (S.SENT, 1, "resent")
    assert message.error_title == "Re-sent once: WhatsApp (Twilio) has no record of it"
    assert message.provider_message_id == twilio_account.messages[-1]["sid"]


def test_a_twilio_lookup_that_fails_is_tried_again_later(client, twilio_account, fake_providers, quick_recovery):
    post_twilio(client, twilio_params("whatsapp_text"))
    message = staff_message("We open at nine.")
    twilio_account.kill_worker = "after"
    with pytest.raises(WorkerKilled):
        send_message(message_id=message.pk)
    requeue_stalled_messages()
    fake_providers.replace(responses.GET, TWILIO_MESSAGES, json={"code": 20500, "message": "Oops"}, status=500)

    assert resolve_unknown_sends() == {"waiting": 1}
    assert Message.objects.get(pk=message.pk).status == S.UNKNOWN
    assert twilio_account.bodies().count("We open at nine.") == 1


# --- Claims of a worker that is gone come back within seconds; a live worker's stay its own.


def test_the_claims_of_a_worker_that_stopped_beating_are_taken_back_and_answered_once(client, graph_ok, settings):
    post_meta(client, meta_body("text"))
    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    bot_reply().delete()
    long_ago = timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_STALE_SECONDS + 1)
    beat(name="celery@gone", started_at=long_ago)
    WorkerHeartbeat.objects.filter(name="celery@gone").update(beat_at=long_ago)
    Message.objects.filter(pk=inbound.pk).update(status=S.PROCESSING, claimed_by="celery@gone", updated_at=long_ago)

    counts = requeue_stalled_messages()

    assert counts["inbound"] == 1
    assert bot_reply().status == S.SENT
    assert len(graph_messages(graph_ok, GRAPH_MESSAGES)) == 2  # the first reply, and the new one


def test_the_claims_of_a_live_worker_are_left_to_it(client, graph_ok):
    post_meta(client, meta_body("text"))
    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    a_minute_ago = timezone.now() - timedelta(seconds=60)
    beat(name="celery@busy", started_at=a_minute_ago - timedelta(hours=1))
    Message.objects.filter(pk=inbound.pk).update(status=S.PROCESSING, claimed_by="celery@busy", updated_at=a_minute_ago)

    assert requeue_stalled_messages()["inbound"] == 0
    assert Message.objects.get(pk=inbound.pk).status == S.PROCESSING


def test_the_claims_of_a_restarted_worker_are_taken_back_at_its_first_heartbeat(client, graph_ok):
    post_meta(client, meta_body("text"))
    message = staff_message("We open at nine.")
    just_now = timezone.now() - timedelta(seconds=1)
    Message.objects.filter(pk=message.pk).update(status=S.SENDING, claimed_by="celery@host", updated_at=just_now)
    beat(name="celery@host", started_at=timezone.now())  # the same worker, started again

    assert requeue_stalled_messages()["outbound"] == 1
    assert Message.objects.get(pk=message.pk).status == S.SENT


def test_the_sweep_leaves_a_send_to_its_retry_until_the_retry_is_overdue(client, graph_ok, settings):
    post_meta(client, meta_body("text"))
    message = staff_message("We open at nine.")
    settings.SWEEP_REQUEUE_AFTER_SECONDS = 10
    long_ago = timezone.now() - timedelta(minutes=5)
    Message.objects.filter(pk=message.pk).update(updated_at=long_ago, retry_at=timezone.now() + timedelta(seconds=30))

    assert requeue_stalled_messages()["outbound"] == 0

    Message.objects.filter(pk=message.pk).update(retry_at=timezone.now() - timedelta(seconds=11))
    assert requeue_stalled_messages()["outbound"] == 1
    assert Message.objects.get(pk=message.pk).status == S.SENT


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL: the broker's queue")
def test_while_tasks_wait_in_the_broker_a_waiting_message_is_queued_again_only_once_it_is_stale(
    client, graph_ok, settings
):
    """In a surge the broker holds the tasks the workers have not reached: a message idle past
    SWEEP_REQUEUE_AFTER_SECONDS is waiting its turn there, and another copy of its task would
    only cost a worker a run. At a worker's start, after a broker reconnection, once stale, or
    with nothing queued, it gets one."""
    import redis

    post_meta(client, meta_body("text"))
    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    settings.CELERY_BROKER_URL = os.environ["REDIS_URL"]
    settings.CELERY_TASK_DEFAULT_QUEUE = queue = f"whatsbot-test-{uuid.uuid4().hex}"
    broker = redis.Redis.from_url(os.environ["REDIS_URL"])

    def waiting_for(seconds: float) -> None:
        idle_since = timezone.now() - timedelta(seconds=seconds)
        Message.objects.filter(pk=inbound.pk).update(status=S.RECEIVED, updated_at=idle_since)

    try:
        broker.rpush(queue, "another customer's task")
        waiting_for(settings.SWEEP_REQUEUE_AFTER_SECONDS + 30)
        assert requeue_stalled_messages(trust_broker=True)["inbound"] == 0
        assert requeue_stalled_messages(trust_broker=False)["inbound"] == 1  # a worker's start, a reconnection

        waiting_for(settings.SWEEP_STALE_AFTER_SECONDS + 1)
        assert requeue_stalled_messages(trust_broker=True)["inbound"] == 1

        broker.delete(queue)
        waiting_for(settings.SWEEP_REQUEUE_AFTER_SECONDS + 1)
        assert requeue_stalled_messages(trust_broker=True)["inbound"] == 1
    finally:
        broker.delete(queue)
        broker.close()


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL: the broker's connections")
def test_every_slot_of_a_worker_can_acknowledge_its_task_at_the_same_moment(settings):
    """A surge ends with many tasks finishing together, each acknowledging (acks_late) through
    the process's pool of Redis connections. With kombu's default of 10, most of 200 failed
    ("Couldn't ack": the tasks handed out again later); the pool follows WORKER_CONCURRENCY."""
    from kombu import Connection, Queue

    slots = settings.WORKER_CONCURRENCY
    name = f"whatsbot-test-acks-{uuid.uuid4().hex}"
    with Connection(os.environ["REDIS_URL"], transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS) as broker:
        channel = broker.default_channel
        queue = Queue(name, channel=channel)
        queue.declare()
        try:
            for index in range(slots):
                channel.basic_publish(channel.prepare_message(str(index)), exchange="", routing_key=name)
            taken = [queue.get(no_ack=False) for _ in range(slots)]
            together = threading.Barrier(slots)
            failures: list[Exception] = []

            def acknowledge(task) -> None:
                together.wait()
                try:
                    task.ack()
                except Exception as exc:  # what kombu's ack_log_error would log CRITICAL
                    failures.append(exc)

            threads = [threading.Thread(target=acknowledge, args=(task,)) for task in taken]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

            assert all(taken) and not failures, failures[:3]
            # Nothing of ours is left in Redis's hash of unacknowledged tasks (to be handed out again).
            tags = [task.delivery_tag for task in taken]
            assert channel.client.hmget(channel.unacked_key, tags) == [None] * slots
        finally:
            queue.delete()


def test_with_every_slot_publishing_to_a_broker_that_does_not_answer_one_more_publisher_is_not_held_up(settings):
    """A publish holds one of the process's broker connections until the broker answers or the
    socket times out (5 s). With every slot of a worker in such a publish, the recorder and the
    sweep still get one at once, so that theirs fails within its own timeout too (the row waits for
    the sweep). With kombu's default pool of 10 they queued behind the slots, with no time limit:
    5 s per 10 slots, 100 s behind 200."""
    pool = celery_app.producer_pool
    publishers = settings.WORKER_CONCURRENCY + 1  # every slot, and the recorder
    held: list = []
    all_held, done = threading.Event(), threading.Event()

    def hold() -> None:
        for _ in range(publishers):
            held.append(pool.acquire(block=True))
        all_held.set()
        done.wait()
        for producer in held:
            producer.release()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        assert all_held.wait(timeout=10), f"{len(held)} of {publishers} publishers got a broker connection"
    finally:
        done.set()
    holder.join(timeout=10)


def test_a_part_marked_by_another_sender_is_never_sent_again(client, graph_ok):
    post_meta(client, meta_body("text"))
    message = staff_message("We open at nine.")
    MessagePart.objects.create(message=message, index=0, text=message.text, attempted_at=timezone.now())

    assert send_message(message_id=message.pk) is None
    assert len(graph_messages(graph_ok, GRAPH_MESSAGES)) == 1
    assert Message.objects.get(pk=message.pk).status == S.SENDING
