"""Right to erasure (GDPR art. 17): every row and file about one person, and the processors' copies.

What stays (README, "What remains after an erasure"): the ErasureRecord (counts, who and when, a
keyed hash of the identifier typed), keyed hashes of each identifier the person reached us by
(so a late delivery naming them is not captured again), the RemoteDeletion rows (processors'
opaque ids and results) and ProcessedMessage (hashes of providers' message ids: a late webhook
retry of an erased message is recognised and ignored instead of recreating it).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.db import transaction

from accounts.audit import record_security_event
from accounts.models import SecurityEvent
from conversations import events, notify
from conversations.models import (
    Attachment,
    AuditEntry,
    CapturedWebhook,
    Conversation,
    Message,
    ToolCall,
)
from gdpr.files import delete_stored_files
from gdpr.models import ErasedIdentifier, ErasureRecord, RemoteDeletion
from gdpr.remote import (
    RemoteCopy,
    list_remote_copies,
    record_remote_deletions,
    run_remote_deletions,
    schedule_remote_deletions,
)
from gdpr.subjects import Subject
from gdpr.traces import (
    erased_identifier_hashes,
    list_subject_admin_log,
    list_subject_audit_entries,
    list_subject_captures,
)
from profiles.models import ClientProfile, Contact
from telemetry import metrics

logger = logging.getLogger(__name__)

# Delete-count keys of Model.delete() -> the names an erasure record uses.
_COUNT_NAMES = {
    Contact._meta.label: "contacts",
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
    """What an erasure would delete: local counts, the identities found and the processors' copies."""

    subject: Subject
    counts: dict[str, int]
    identities: list[str] = field(default_factory=list)  # "profile #3: meta US.1…", as staff see them
    remote: list[RemoteCopy] = field(default_factory=list)

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
        "contacts": len(subject.contact_ids),
        "profiles": len(ids),
        "conversations": conversations.count(),
        "messages": messages.count(),
        "attachments": attachments.count(),
        "files": attachments.exclude(file="").count(),
        "audit_entries": list_subject_audit_entries(subject).count(),
        "tool_calls": ToolCall.objects.filter(conversation__profile__in=ids).count(),
        "webhook_captures": len(list_subject_captures(subject)),
        "admin_log_entries": list_subject_admin_log(subject).count(),
    }
    identities = [
        f"profile #{profile.pk}: {profile.get_provider_display()} {profile.external_id}" for profile in subject.profiles
    ]
    remote = list_remote_copies(messages=messages, conversations=conversations)
    return ErasurePlan(subject=subject, counts=counts, identities=identities, remote=remote)


def erase_subject(*, subject: Subject, actor: User | None = None, actor_label: str = "") -> ErasureRecord:
    """Delete the subject's contacts, channel identities (profiles), conversations, messages,
    attachments, audit entries, webhook captures, admin history and media files; record the
    erasure; ask the processors to delete their copies (retried by a task until done)."""
    ids = subject.profile_ids
    with transaction.atomic():
        # Lock first: a reply being stored for this person waits, then finds its conversation gone;
        # one stored already is deleted with the rest and its send finds nothing to send. What a
        # reply in flight makes afterwards is dropped by it (conversations.services.orphans).
        list(Contact.objects.select_for_update().filter(pk__in=subject.contact_ids).values_list("pk", flat=True))
        list(ClientProfile.objects.select_for_update().filter(pk__in=ids).values_list("pk", flat=True))
        conversation_ids = list(
            Conversation.objects.select_for_update().filter(profile__in=ids).values_list("pk", flat=True)
        )
        plan = plan_erasure(subject=subject)
        file_names = list(
            Attachment.objects.filter(message__conversation__profile__in=ids)
            .exclude(file="")
            .values_list("file", flat=True)
        )
        list_subject_admin_log(subject).delete()
        list_subject_audit_entries(subject).delete()
        CapturedWebhook.objects.filter(pk__in=[capture.pk for capture in list_subject_captures(subject)]).delete()
        # A contact takes its identities, their conversations and messages with it.
        _, deleted = Contact.objects.filter(pk__in=subject.contact_ids).delete()
        counts: dict[str, int | dict[str, int]] = {name: 0 for name in _COUNT_NAMES.values()}
        counts.update({_COUNT_NAMES[label]: n for label, n in deleted.items() if label in _COUNT_NAMES})
        for name in ("audit_entries", "webhook_captures", "admin_log_entries"):
            counts[name] = plan.counts[name]
        counts["files"] = len(file_names)
        counts["remote_deletions"] = plan.remote_counts
        record = ErasureRecord.objects.create(
            performed_by=actor,
            performed_by_label=actor_label or (actor.get_username() if actor else ""),
            identifier_kind=subject.kind,
            identifier_hash=subject.identifier_hash,
            counts=counts,
        )
        ErasedIdentifier.objects.bulk_create(
            ErasedIdentifier(erasure=record, identifier_hash=identifier_hash)
            for identifier_hash in sorted(erased_identifier_hashes(subject))
        )
        record_remote_deletions(copies=plan.remote, origin=RemoteDeletion.Origin.ERASURE, erasure=record)
        AuditEntry.objects.create(actor=actor, action="gdpr.erase", detail={"erasure_id": record.pk})
        record_security_event(
            action=SecurityEvent.Action.ERASURE,
            actor=actor,
            actor_label=actor_label,
            target=f"gdpr.erasurerecord #{record.pk}",
            detail={"profiles": len(ids)},
        )
        transaction.on_commit(lambda: delete_stored_files(names=file_names))
        events.emit(events.CONTACT_ERASED, erasure_id=record.pk, contact_ids=subject.contact_ids)
        notify.conversations_removed(conversation_ids=conversation_ids)
    logger.info("Erasure %s deleted %s.", record.pk, counts)
    metrics.count_gdpr_job(job="erase", outcome="done")
    # A first attempt now, so the command can show the results; whatever is left goes to a task.
    if run_remote_deletions(erasure_id=record.pk):
        schedule_remote_deletions(erasure_id=record.pk)
    return record
