"""A delivery that can never be recorded is quarantined after a few attempts: visible to staff,
logged once, and never in the way of the others."""

from __future__ import annotations

import logging
from unittest.mock import patch

import pytest
from celery import current_app
from django.core.management import call_command
from django.db import connection

from conversations.dispatch import RECORD_INBOUND
from conversations.models import AuditEntry, Message, ProcessedMessage
from conversations.services.inbound import record_pending_inbound
from conversations.services.sweep import requeue_stalled_messages
from conversations.tests.fakes import GRAPH_MESSAGES

from .helpers import meta_body, meta_text, post_meta

pytestmark = pytest.mark.django_db


def unrecordable(number: int, **pending) -> ProcessedMessage:
    """An accepted delivery whose stored message this version cannot record."""
    return ProcessedMessage.objects.create(
        provider="meta",
        provider_message_id=ProcessedMessage.key_for(f"wamid.BAD{number}"),
        pending=pending or {"not": "a message"},
    )


def errors_about(caplog, processed: ProcessedMessage) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR and f"delivery {processed.pk} " in r.getMessage()]


@pytest.fixture
def doorbell_lost():
    """Webhooks accept, but no record task reaches a worker: deliveries wait for a recorder."""
    with patch.object(current_app.tasks[RECORD_INBOUND], "apply_async"):
        yield


def test_a_delivery_that_cannot_be_recorded_is_quarantined_after_its_attempts_and_logged_once(caplog, settings):
    settings.INBOUND_RECORD_MAX_ATTEMPTS = 3
    bad = unrecordable(1)

    with caplog.at_level(logging.WARNING, logger="conversations.services.inbound"):
        handled = [record_pending_inbound() for _ in range(6)]

    bad.refresh_from_db()
    assert handled == [1, 1, 1, 0, 0, 0]
    assert (bad.record_attempts, bad.record_error) == (3, "TypeError")
    assert bad.quarantined_at is not None and bad.pending is not None
    assert len(errors_about(caplog, bad)) == 1
    assert "quarantined" in errors_about(caplog, bad)[0].getMessage()


def test_a_hundred_and_one_quarantine_candidates_do_not_hold_up_a_fresh_message(
    client, graph_ok, doorbell_lost, caplog
):
    bad = [unrecordable(number) for number in range(101)]
    post_meta(client, meta_body("text"))

    # The recorder's loop: drain in batches of 100 while there is something to handle.
    answered = []
    with caplog.at_level(logging.WARNING, logger="conversations.services.inbound"):
        while record_pending_inbound(limit=100):
            answered.append(Message.objects.filter(author=Message.Author.BOT).exists())

    # After one pass over the batch that failed, before any of them is tried again.
    assert answered[:2] == [False, True]
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1
    assert ProcessedMessage.objects.filter(quarantined_at__isnull=False).count() == 101
    assert all(len(errors_about(caplog, processed)) == 1 for processed in bad)
    assert record_pending_inbound(limit=100) == 0


def test_the_sweep_skips_quarantined_deliveries(settings):
    settings.SWEEP_REQUEUE_AFTER_SECONDS = 0
    bad = unrecordable(1)
    ProcessedMessage.objects.filter(pk=bad.pk).update(record_attempts=3, quarantined_at="2026-01-01T00:00:00Z")

    assert requeue_stalled_messages()["accepted"] == 0
    assert ProcessedMessage.objects.get(pk=bad.pk).record_attempts == 3


def test_a_stored_delivery_too_long_for_its_columns_is_quarantined_not_retried_forever(client, graph_ok, doorbell_lost):
    """The webhook refuses identifiers that do not fit (test_webhook_input); a delivery stored
    before those checks, or by a version with other limits, still ends in quarantine."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite does not enforce column lengths")
    post_meta(client, meta_text("Hello", "wamid.FITS"))
    processed = ProcessedMessage.objects.get()
    ProcessedMessage.objects.filter(pk=processed.pk).update(
        pending={**processed.pending, "provider_message_id": "wamid." + "A" * 300}
    )

    for _ in range(5):
        record_pending_inbound()

    processed.refresh_from_db()
    assert (processed.record_attempts, processed.record_error) == (3, "DataError")
    assert processed.quarantined_at is not None
    assert not Message.objects.exists()


def test_staff_see_quarantined_deliveries_and_retry_them_after_a_fix(admin_client, graph_ok, doorbell_lost):
    post_meta(admin_client, meta_body("text"))
    processed = ProcessedMessage.objects.get()
    stored = processed.pending
    # This version cannot read it (say, a field a newer version wrote): quarantined.
    ProcessedMessage.objects.filter(pk=processed.pk).update(pending={**stored, "timestamp": "not a time"})
    for _ in range(3):
        record_pending_inbound()

    listing = admin_client.get("/admin/conversations/processedmessage/?recording=quarantined")
    page = listing.content.decode()
    assert "1 accepted deliveries could not be recorded and are quarantined" in page
    assert "quarantined after 3 attempts" in page and "ValueError" in page

    ProcessedMessage.objects.filter(pk=processed.pk).update(pending=stored)  # the fix
    admin_client.post(
        "/admin/conversations/processedmessage/",
        {"action": "retry_recording", "_selected_action": [processed.pk]},
    )

    processed.refresh_from_db()
    assert (processed.pending, processed.quarantined_at, processed.record_attempts) == (None, None, 0)
    assert Message.objects.filter(author=Message.Author.BOT).count() == 1
    assert AuditEntry.objects.get(action="delivery.retried").detail == {"processed_ids": [processed.pk], "recorded": 1}


def test_staff_drop_the_stored_message_of_a_quarantined_delivery_and_keep_its_dedup_row(admin_client):
    bad = unrecordable(1)
    ProcessedMessage.objects.filter(pk=bad.pk).update(record_attempts=3, quarantined_at="2026-01-01T00:00:00Z")

    admin_client.post(
        "/admin/conversations/processedmessage/", {"action": "drop_stored_message", "_selected_action": [bad.pk]}
    )

    bad.refresh_from_db()
    assert bad.pending is None and bad.quarantined_at is not None
    assert AuditEntry.objects.get(action="delivery.dropped").detail == {"processed_ids": [bad.pk], "dropped": 1}


def test_migrate_warns_about_quarantined_deliveries(capsys):
    bad = unrecordable(1)
    ProcessedMessage.objects.filter(pk=bad.pk).update(record_attempts=3, quarantined_at="2026-01-01T00:00:00Z")

    call_command("check", "--database", "default")

    assert "whatsbot.W006" in capsys.readouterr().err
