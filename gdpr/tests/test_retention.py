import io
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from conversations.models import Attachment, Conversation, Message, MessagePart, ProcessedMessage
from gdpr.models import RemoteDeletion
from gdpr.retention import purge_expired
from gdpr.tasks import delete_remote_copies, retry_pending_remote_deletions
from profiles.models import ClientProfile, Contact

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=500_000)
CUTOFF = NOW - timedelta(days=30)
TICK = timedelta(microseconds=1)


def conversation(external_id: str = "15551234567") -> Conversation:
    profile = ClientProfile.objects.filter(provider="meta", external_id=external_id).first()
    if profile is None:
        profile = ClientProfile.objects.create(
            contact=Contact.objects.create(), provider="meta", external_id=external_id
        )
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


def seed_expiring_history() -> dict[str, set[tuple[str, str]]]:
    """Conversations a purge empties (Meta with its OpenAI conversation and a photo; Twilio with
    a split reply), one it keeps, one empty already; the copies the processors hold of what goes."""
    old = CUTOFF - timedelta(days=2)
    meta = conversation("15550000001")
    Conversation.objects.filter(pk=meta.pk).update(openai_conversation_id="conv_old")
    photo = message(meta, old, with_file=True)
    Attachment.objects.filter(message=photo).update(provider_ref="7001")
    reply = message(meta, old, text="Our answer")
    Message.objects.filter(pk=reply.pk).update(author="bot", direction="out", openai_response_id="resp_old")
    profile = ClientProfile.objects.create(
        contact=Contact.objects.create(), provider="twilio", external_id="whatsapp:+15550000002"
    )
    twilio = Conversation.objects.create(profile=profile, channel="twilio_whatsapp", business_address="whatsapp:+1555")
    inbound = message(twilio, old)
    Message.objects.filter(pk=inbound.pk).update(provider="twilio", provider_message_id="SMold1")
    split = message(twilio, old, text="A long answer in two parts")
    Message.objects.filter(pk=split.pk).update(provider="twilio", direction="out", provider_message_id="SMold3")
    MessagePart.objects.create(message=split, index=0, text="A long answer", provider_message_id="SMold2")
    MessagePart.objects.create(message=split, index=1, text="in two parts", provider_message_id="SMold3")
    kept = conversation("15550000003")
    Conversation.objects.filter(pk=kept.pk).update(openai_conversation_id="conv_kept")
    message(kept, old, text="Old words")
    message(kept, NOW, text="New words")
    conversation("15550000004")  # empty already
    Conversation.objects.filter(updated_at__gte=CUTOFF).update(updated_at=old)
    processed(NOW - timedelta(days=9), "wamid.old")
    return {
        "copies": {
            ("openai_conversation", "conv_old"),
            ("openai_conversation_item", "item_old_1"),
            ("openai_response", "resp_old"),
            ("twilio_message", "SMold1"),
            ("twilio_message", "SMold2"),
            ("twilio_message", "SMold3"),
            ("meta_media", "7001"),
        }
    }


def test_a_dry_run_reports_exactly_what_the_real_run_deletes(openai_store, twilio_deletions, graph_deletions):
    seed_expiring_history()
    openai_store.conversations["conv_old"] = ["item_old_1"]

    dry = purge_expired(now=NOW, retention_days=30, processed_days=8, dry_run=True, batch_size=2)
    assert Message.objects.count() == 6 and Conversation.objects.count() == 4  # nothing deleted
    real = purge_expired(now=NOW, retention_days=30, processed_days=8, batch_size=2)

    assert {**dry.as_dict(), "dry_run": False} == real.as_dict()
    # Two conversations emptied by the purge and one empty already; five messages, six copies.
    assert (real.conversations, real.messages, real.files, real.remote_copies) == (3, 5, 1, 6)
    assert list(Conversation.objects.values_list("openai_conversation_id", flat=True)) == ["conv_kept"]


def test_purge_deletes_the_processors_copies_of_what_it_purges(openai_store, twilio_deletions, graph_deletions):
    expected = seed_expiring_history()["copies"]
    openai_store.conversations.update(conv_old=["item_old_1"], conv_kept=["item_kept"])
    openai_store.responses.add("resp_old")

    purge_expired(now=NOW, retention_days=30, batch_size=2)

    deletes = [path for method, path in openai_store.calls if method == "DELETE"]
    assert deletes == [
        "/v1/conversations/conv_old/items/item_old_1",
        "/v1/conversations/conv_old",
        "/v1/responses/resp_old",
    ]
    issued = {("twilio_message", sid) for sid in twilio_deletions["deleted"]}
    issued |= {("meta_media", media_id) for media_id in graph_deletions}
    issued |= {(kind, remote_id) for kind, remote_id in expected if kind.startswith("openai")}
    assert issued == expected
    assert sorted(twilio_deletions["deleted"]) == ["SMold1", "SMold2", "SMold3"]  # each once
    rows = RemoteDeletion.objects.all()
    assert {(row.origin, row.status) for row in rows} == {("retention", "deleted")}
    assert {(row.kind, row.remote_id) for row in rows} == expected
    assert openai_store.conversations == {"conv_kept": ["item_kept"]}


def test_a_copy_refused_for_now_is_retried_after_its_row_is_gone(openai_store, twilio_deletions, graph_deletions):
    seed_expiring_history()
    twilio_deletions["in_flight"]["SMold1"] = 10_000  # Twilio: 20009, still in flight
    delete_remote_copies.max_retries = 2
    try:
        purge_expired(now=NOW, retention_days=30)
    finally:
        delete_remote_copies.max_retries = 100

    assert not Message.objects.filter(provider_message_id="SMold1").exists()
    waiting = RemoteDeletion.objects.get(remote_id="SMold1")
    assert (waiting.status, waiting.erasure, "20009" in waiting.last_error) == ("pending", None, True)
    twilio_deletions["in_flight"]["SMold1"] = 0
    assert retry_pending_remote_deletions.delay().result == 0  # what beat runs
    assert twilio_deletions["deleted"].count("SMold1") == 1


def test_purge_expired_dry_run_and_real_run_print_the_same_numbers(
    settings, openai_store, twilio_deletions, graph_deletions
):
    seed_expiring_history()
    dry, real = io.StringIO(), io.StringIO()

    call_command("purge_expired", "--days", "30", "--dry-run", "--no-progress", stdout=dry)
    call_command("purge_expired", "--days", "30", "--no-progress", stdout=real)

    assert dry.getvalue().startswith("Would delete: 5 messages")
    assert re.findall(r"\d+ [a-z]", dry.getvalue()) == re.findall(r"\d+ [a-z]", real.getvalue())
    assert "3 empty conversations" in real.getvalue() and "6 copies at processors" in real.getvalue()
