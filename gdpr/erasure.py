"""Right to erasure (GDPR art. 17): every row and file about one person, and the processors' copies.

What stays: the ErasureRecord (a keyed hash, counts, who and when), the RemoteDeletion rows
(processors' opaque ids and results) and ProcessedMessage (providers' opaque message ids: a late
webhook retry of an erased message is recognised and ignored instead of recreating it).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet

from conversations import events
from conversations.models import (
    Attachment,
    AuditEntry,
    CapturedWebhook,
    Conversation,
    Message,
    MessagePart,
    Provider,
    ToolCall,
)
from gdpr.files import delete_stored_files
from gdpr.models import ErasureRecord, RemoteDeletion
from gdpr.remote import POSITIONS, run_remote_deletions, schedule_remote_deletions
from gdpr.subjects import Subject
from profiles.models import ClientProfile
from telemetry import metrics

logger = logging.getLogger(__name__)

# Keyed by the stored value: a Kind member and its string are the same key.
_PROCESSOR: dict[str, RemoteDeletion.Processor] = {
    RemoteDeletion.Kind.OPENAI_CONVERSATION: RemoteDeletion.Processor.OPENAI,
    RemoteDeletion.Kind.OPENAI_RESPONSE: RemoteDeletion.Processor.OPENAI,
    RemoteDeletion.Kind.TWILIO_MESSAGE: RemoteDeletion.Processor.TWILIO,
    RemoteDeletion.Kind.META_MEDIA: RemoteDeletion.Processor.META,
}
# Delete-count keys of Model.delete() -> the names an erasure record uses.
_COUNT_NAMES = {
    ClientProfile._meta.label: "profiles",
    Conversation._meta.label: "conversations",
    Message._meta.label: "messages",
    Attachment._meta.label: "attachments",
    AuditEntry._meta.label: "audit_entries",
    # The model's function calls (arguments and results): deleted with their conversation.
    ToolCall._meta.label: "tool_calls",
}


@dataclass(frozen=True)
class ErasurePlan:
    """What an erasure would delete: local counts and the processors' copies (read only)."""

    subject: Subject
    counts: dict[str, int]
    remote: list[tuple[str, str]] = field(default_factory=list)  # (RemoteDeletion.Kind, remote id)

    @property
    def remote_counts(self) -> dict[str, int]:
        return dict(Counter(str(kind) for kind, _ in self.remote))


def plan_erasure(*, subject: Subject) -> ErasurePlan:
    """Count what erasing the subject deletes, and list the remote copies to delete (no writes)."""
    ids = subject.profile_ids
    conversations = Conversation.objects.filter(profile__in=ids)
    messages = Message.objects.filter(conversation__profile__in=ids)
    attachments = Attachment.objects.filter(message__conversation__profile__in=ids)
    counts = {
        "profiles": len(ids),
        "conversations": conversations.count(),
        "messages": messages.count(),
        "attachments": attachments.count(),
        "files": attachments.exclude(file="").count(),
        "audit_entries": _audit_entries(ids).count(),
        "tool_calls": ToolCall.objects.filter(conversation__profile__in=ids).count(),
        "webhook_captures": len(_webhook_captures(subject)),
    }
    remote = [
        (RemoteDeletion.Kind.OPENAI_CONVERSATION, conversation_id)
        for conversation_id in conversations.exclude(openai_conversation_id="").values_list(
            "openai_conversation_id", flat=True
        )
    ]
    remote += [
        (RemoteDeletion.Kind.OPENAI_RESPONSE, response_id)
        for response_id in messages.exclude(openai_response_id="").values_list("openai_response_id", flat=True)
    ]
    remote += [
        (RemoteDeletion.Kind.TWILIO_MESSAGE, sid)
        for sid in messages.filter(provider=Provider.TWILIO, provider_message_id__isnull=False).values_list(
            "provider_message_id", flat=True
        )
        if sid
    ]
    # A reply split into parts is one Message but several Twilio messages.
    remote += [
        (RemoteDeletion.Kind.TWILIO_MESSAGE, sid)
        for sid in MessagePart.objects.filter(message__in=messages, message__provider=Provider.TWILIO)
        .exclude(provider_message_id="")
        .values_list("provider_message_id", flat=True)
    ]
    # Meta keeps no message store to delete from; only media the app uploads (META_MEDIA) could be
    # deleted there. The app sends text only today, so there is nothing to list for Meta yet.
    return ErasurePlan(subject=subject, counts=counts, remote=sorted(set(remote), key=lambda r: POSITIONS[r[0]]))


def erase_subject(*, subject: Subject, actor: User | None = None, actor_label: str = "") -> ErasureRecord:
    """Delete the subject's profiles, conversations, messages, attachments, audit entries and
    media files; record the erasure; ask the processors to delete their copies (retried by a
    task until done)."""
    ids = subject.profile_ids
    with transaction.atomic():
        # Lock first: a reply being stored for this person waits, then finds its conversation gone;
        # one stored already is deleted with the rest and its send finds nothing to send.
        list(ClientProfile.objects.select_for_update().filter(pk__in=ids).values_list("pk", flat=True))
        list(Conversation.objects.select_for_update().filter(profile__in=ids).values_list("pk", flat=True))
        plan = plan_erasure(subject=subject)
        file_names = list(
            Attachment.objects.filter(message__conversation__profile__in=ids)
            .exclude(file="")
            .values_list("file", flat=True)
        )
        _audit_entries(ids).delete()
        CapturedWebhook.objects.filter(pk__in=_webhook_captures(subject)).delete()
        _, deleted = ClientProfile.objects.filter(pk__in=ids).delete()
        counts: dict[str, int | dict[str, int]] = {name: 0 for name in _COUNT_NAMES.values()}
        counts.update({_COUNT_NAMES[label]: n for label, n in deleted.items() if label in _COUNT_NAMES})
        counts["audit_entries"] = plan.counts["audit_entries"]
        counts["webhook_captures"] = plan.counts["webhook_captures"]
        counts["files"] = len(file_names)
        counts["remote_deletions"] = plan.remote_counts
        record = ErasureRecord.objects.create(
            performed_by=actor,
            performed_by_label=actor_label or (actor.get_username() if actor else ""),
            identifier_kind=subject.kind,
            identifier_hash=subject.identifier_hash,
            counts=counts,
        )
        RemoteDeletion.objects.bulk_create(
            RemoteDeletion(
                erasure=record, processor=_PROCESSOR[kind], kind=kind, remote_id=remote_id, position=POSITIONS[kind]
            )
            for kind, remote_id in plan.remote
        )
        AuditEntry.objects.create(actor=actor, action="gdpr.erase", detail={"erasure_id": record.pk})
        transaction.on_commit(lambda: delete_stored_files(names=file_names))
        events.emit(events.CONTACT_ERASED, erasure_id=record.pk, contact_ids=ids)
    logger.info("Erasure %s deleted %s.", record.pk, counts)
    metrics.count_gdpr_job(job="erase", outcome="done")
    # A first attempt now, so the command can show the results; whatever is left goes to a task.
    if run_remote_deletions(erasure_id=record.pk):
        schedule_remote_deletions(erasure_id=record.pk)
    return record


def _webhook_captures(subject: Subject) -> list[int]:
    """Raw webhook captures (WEBHOOK_CAPTURE_HOURS) that carry the subject's ids or number.

    Bodies are opaque bytes (JSON or form-encoded), so they are searched in Python; captures
    live only hours, so there are few.
    """
    tokens = {profile.external_id.encode() for profile in subject.profiles}
    tokens |= {"".join(filter(str.isdigit, p.phone_number)).encode() for p in subject.profiles if p.phone_number}
    tokens.discard(b"")
    return [
        capture.pk
        for capture in CapturedWebhook.objects.only("pk", "body").iterator()
        if any(token in bytes(capture.body) for token in tokens)
    ]


def _audit_entries(profile_ids: list[int]) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(Q(profile__in=profile_ids) | Q(conversation__profile__in=profile_ids))
