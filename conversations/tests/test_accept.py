"""A webhook only accepts: one ProcessedMessage row holds the parsed message until a worker records it."""

from datetime import UTC, datetime
from unittest.mock import patch

import pytest
from celery import current_app
from kombu.exceptions import OperationalError

from conversations.dispatch import RECORD_INBOUND
from conversations.models import Message, ProcessedMessage
from conversations.providers.base import InboundMessage, MediaRef
from conversations.services.sweep import requeue_stalled_messages
from conversations.tasks import record_inbound_message
from conversations.tests.fakes import GRAPH_MESSAGES
from gdpr.erasure import erase_subject
from gdpr.subjects import find_subject

from .helpers import meta_body, post_meta

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down():
    """The publish of the record task fails as kombu fails when Redis does not answer."""
    task = current_app.tasks[RECORD_INBOUND]
    with patch.object(task, "apply_async", side_effect=OperationalError("Error 111 connecting to redis")):
        yield


def test_a_delivery_is_recorded_and_its_pending_copy_emptied(client, graph_ok):
    response = post_meta(client, meta_body("text"))

    assert response.status_code == 200
    processed = ProcessedMessage.objects.get()
    assert processed.pending is None  # what stays holds no personal data
    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    assert inbound.text == "Hi! What are your opening hours?"
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1


# Real commits: the duplicate delivery's INSERT fails on its own (autocommit) as in production;
# inside a test transaction that IntegrityError would poison the whole test.
@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_the_delivery_waits_for_the_sweep_and_is_answered_once(
    client, graph_ok, broker_down, settings
):
    response = post_meta(client, meta_body("text"))

    assert response.status_code == 200
    processed = ProcessedMessage.objects.get()
    assert processed.pending["text"] == "Hi! What are your opening hours?"
    assert not Message.objects.exists()
    # Meta retries the delivery meanwhile: still one row, nothing twice.
    assert post_meta(client, meta_body("text")).status_code == 200
    assert ProcessedMessage.objects.count() == 1

    settings.SWEEP_REQUEUE_AFTER_SECONDS = 0
    counts = requeue_stalled_messages()

    assert counts["accepted"] == 1
    processed.refresh_from_db()
    assert processed.pending is None
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert Message.objects.filter(author=Message.Author.BOT).count() == 1
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1


def test_the_sweep_leaves_a_fresh_delivery_to_its_task(client, broker_down):
    post_meta(client, meta_body("text"))

    assert requeue_stalled_messages()["accepted"] == 0
    assert ProcessedMessage.objects.get().pending is not None


def test_the_record_task_run_twice_records_once(client, graph_ok, broker_down):
    post_meta(client, meta_body("text"))
    processed = ProcessedMessage.objects.get()

    record_inbound_message(processed.pk)
    record_inbound_message(processed.pk)

    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert Message.objects.filter(author=Message.Author.BOT).count() == 1
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1


def test_a_data_officer_finds_and_erases_a_delivery_not_recorded_yet(client, broker_down):
    post_meta(client, meta_body("text"))
    assert ProcessedMessage.objects.get().pending is not None

    subject = find_subject(identifier="+15551234567")
    erase_subject(subject=subject)

    assert ProcessedMessage.objects.get().pending is None
    assert not Message.objects.exists()


def test_a_parsed_message_survives_its_stored_form_unchanged():
    inbound = InboundMessage(
        provider="meta",
        provider_message_id="wamid.X",
        channel="meta_whatsapp",
        business_address="110000000000001",
        external_user_id="US.1",
        kind="image",
        text="שלום 👋",
        phone_number="+16505551234",
        display_name="Ana",
        timestamp=datetime(2026, 11, 22, 2, 30, tzinfo=UTC),
        media=(MediaRef(provider_ref="media-1", mime_type="image/jpeg", caption="a photo"),),
        reacts_to="",
    )

    assert InboundMessage.from_json(inbound.to_json()) == inbound
