import io
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from conversations.models import Attachment, Conversation, Message, ProcessedMessage
from gdpr.retention import purge_expired
from profiles.models import ClientProfile

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=500_000)
CUTOFF = NOW - timedelta(days=30)
TICK = timedelta(microseconds=1)


def conversation(external_id: str = "15551234567") -> Conversation:
    profile, _ = ClientProfile.objects.get_or_create(provider="meta", external_id=external_id)
    return Conversation.objects.create(profile=profile, channel="meta_whatsapp", business_address="110000000000001")


def message(conv: Conversation, created_at, *, text: str = "hello", with_file: bool = False) -> Message:
    msg = Message.objects.create(
        conversation=conv, direction="in", author="customer", text=text, provider="meta", status="handled"
    )
    Message.objects.filter(pk=msg.pk).update(created_at=created_at)
    if with_file:
        attachment = Attachment(message=msg, content_type="image/jpeg")
        attachment.file.save("photo.jpg", ContentFile(b"jpeg"), save=True)
    return msg


def processed(received_at, provider_message_id: str) -> ProcessedMessage:
    row = ProcessedMessage.objects.create(provider="meta", provider_message_id=provider_message_id)
    ProcessedMessage.objects.filter(pk=row.pk).update(received_at=received_at)
    return row


def test_purge_respects_the_cut_off_exactly():
    conv = conversation()
    expired = message(conv, CUTOFF - TICK, with_file=True)
    at_cutoff = message(conv, CUTOFF)
    recent = message(conv, NOW - timedelta(days=1))
    file_name = expired.attachments.get().file.name
    old_id = processed(NOW - timedelta(days=8) - TICK, "wamid.old")
    window_id = processed(NOW - timedelta(days=8), "wamid.edge")

    summary = purge_expired(now=NOW, retention_days=30, processed_days=8)

    assert set(Message.objects.values_list("pk", flat=True)) == {at_cutoff.pk, recent.pk}
    assert not Message.objects.filter(pk=expired.pk).exists()
    assert not Attachment.objects.exists() and not default_storage.exists(file_name)
    assert list(ProcessedMessage.objects.values_list("pk", flat=True)) == [window_id.pk]
    assert not ProcessedMessage.objects.filter(pk=old_id.pk).exists()
    assert (summary.messages, summary.attachments, summary.files, summary.processed_ids) == (1, 1, 1, 1)
    assert summary.message_cutoff == CUTOFF


def test_conversations_left_empty_go_and_profiles_stay():
    emptied = conversation("15550000001")
    message(emptied, CUTOFF - timedelta(days=3))
    Conversation.objects.filter(pk=emptied.pk).update(updated_at=CUTOFF - timedelta(days=3))
    kept = conversation("15550000002")
    message(kept, CUTOFF - timedelta(days=3))
    message(kept, NOW)

    summary = purge_expired(now=NOW, retention_days=30, batch_size=1)

    assert list(Conversation.objects.values_list("pk", flat=True)) == [kept.pk]
    assert summary.conversations == 1 and summary.messages == 2
    assert ClientProfile.objects.count() == 2  # a profile holds the opt-out: it is not purged


def test_purge_works_in_batches_until_everything_expired_is_gone():
    conv = conversation()
    for _ in range(7):
        message(conv, CUTOFF - timedelta(days=1))
    keep = message(conv, NOW)

    summary = purge_expired(now=NOW, retention_days=30, batch_size=3)

    assert summary.messages == 7
    assert list(Message.objects.values_list("pk", flat=True)) == [keep.pk]


def test_messages_are_kept_when_no_retention_is_set(settings):
    settings.DATA_RETENTION_DAYS = None
    conv = conversation()
    message(conv, NOW - timedelta(days=3650))
    processed(NOW - timedelta(days=30), "wamid.old")

    summary = purge_expired(now=NOW)

    assert Message.objects.count() == 1
    assert summary.message_cutoff is None
    assert summary.processed_ids == 1 and not ProcessedMessage.objects.exists()


def test_a_dry_run_counts_and_deletes_nothing():
    conv = conversation()
    message(conv, CUTOFF - TICK, with_file=True)
    processed(NOW - timedelta(days=9), "wamid.old")

    summary = purge_expired(now=NOW, retention_days=30, dry_run=True)

    assert (summary.messages, summary.attachments, summary.files, summary.processed_ids) == (1, 1, 1, 1)
    assert Message.objects.count() == 1 and Attachment.objects.count() == 1 and ProcessedMessage.objects.count() == 1


def test_purge_expired_command_prints_a_summary(settings):
    settings.DATA_RETENTION_DAYS = 30
    conv = conversation()
    message(conv, timezone.now() - timedelta(days=31))
    message(conv, timezone.now())
    out = io.StringIO()

    call_command("purge_expired", "--no-progress", stdout=out)

    assert "Deleted: 1 messages" in out.getvalue()
    assert Message.objects.count() == 1


def test_purge_expired_command_dry_run_and_unset_retention_say_so(settings):
    settings.DATA_RETENTION_DAYS = None
    message(conversation(), timezone.now() - timedelta(days=400))
    out = io.StringIO()

    call_command("purge_expired", "--dry-run", "--no-progress", stdout=out)

    assert "DATA_RETENTION_DAYS is unset" in out.getvalue()
    assert "Would delete: 0 messages (none)" in out.getvalue()
    assert Message.objects.count() == 1


def test_the_beat_task_purges_with_the_settings(settings):
    from gdpr.tasks import purge_expired_data

    settings.DATA_RETENTION_DAYS = 30
    message(conversation(), timezone.now() - timedelta(days=31))

    purge_expired_data.delay()

    assert not Message.objects.exists()
