"""What an erasure leaves behind: proof that it happened, and the state of each remote deletion.

Neither model holds personal data: the subject is kept only as a keyed hash, and remote ids are
the processors' opaque ids (needed to retry a deletion and to prove it was done).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ErasureRecord(models.Model):
    """One erasure of one person (every contact the identifier named, with all their identities)."""

    class IdentifierKind(models.TextChoices):
        PHONE = "phone", "Phone number"
        EMAIL = "email", "Email address"
        EXTERNAL_ID = "external_id", "WhatsApp id / BSUID / provider address"
        VISITOR_ID = "visitor_id", "Web chat visitor id"
        CONTACT_ID = "contact_id", "Contact id"
        PROFILE_ID = "profile_id", "Profile id"

    performed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who ran it when there is no user row (the command line): the operator's login name.
    performed_by_label = models.CharField(max_length=150, blank=True)
    performed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    identifier_kind = models.CharField(max_length=16, choices=IdentifierKind.choices)
    # HMAC-SHA256 of the normalised identifier: answers "was this person erased?" without keeping them.
    identifier_hash = models.CharField(max_length=64, db_index=True)
    counts = models.JSONField(default=dict, help_text="Rows and files deleted, per kind.")

    class Meta:
        ordering = ["-performed_at"]
        permissions = [
            ("export_subject", "Can export a person's data"),
            ("erase_subject", "Can erase a person's data"),
        ]

    def __str__(self) -> str:
        return f"Erasure #{self.pk} at {self.performed_at:%Y-%m-%d %H:%M}"


class ErasedIdentifier(models.Model):
    """A keyed hash of one identifier an erased person reached us by (phone, WhatsApp id, BSUID,
    provider address, email): a late delivery naming it is not captured again (captures hold raw
    bodies). The hash answers "is this an erased person's identifier?" and nothing else."""

    erasure = models.ForeignKey(ErasureRecord, on_delete=models.CASCADE, related_name="erased_identifiers")
    identifier_hash = models.CharField(max_length=64, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["erasure", "identifier_hash"], name="one_erased_identifier_per_erasure"),
        ]

    def __str__(self) -> str:
        return f"Erased identifier {self.identifier_hash[:12]}…"


class RemoteDeletion(models.Model):
    """One copy held by a processor that must be deleted there, and how that went: asked for by
    an erasure, by retention (purge_expired), or found orphaned (no row names it: a
    reply in flight while its conversation was erased, a discarded reply)."""

    class Origin(models.TextChoices):
        ERASURE = "erasure", "Erasure"
        RETENTION = "retention", "Retention (purge_expired)"
        ORPHAN = "orphan", "Orphaned (a reply in flight, discarded, or an earlier call of a turn)"

    class Processor(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        TWILIO = "twilio", "Twilio"
        META = "meta", "Meta"

    class Kind(models.TextChoices):
        OPENAI_CONVERSATION_ITEM = "openai_conversation_item", "OpenAI conversation item"
        OPENAI_CONVERSATION = "openai_conversation", "OpenAI conversation"
        OPENAI_RESPONSE = "openai_response", "OpenAI stored response"
        TWILIO_MESSAGE = "twilio_message", "Twilio message (and its media)"
        META_MEDIA = "meta_media", "Media uploaded to Meta"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELETED = "deleted", "Deleted"
        ALREADY_GONE = "already_gone", "Already gone (404)"
        FAILED = "failed", "Failed"

    # Null for retention and orphans: they belong to no one erasure.
    erasure = models.ForeignKey(
        ErasureRecord, null=True, blank=True, on_delete=models.CASCADE, related_name="remote_deletions"
    )
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.ERASURE)
    processor = models.CharField(max_length=16, choices=Processor.choices)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    remote_id = models.CharField(max_length=200)
    # The OpenAI conversation an item belongs to (items are deleted through it).
    parent_id = models.CharField(max_length=200, blank=True)
    # Deletions run in this order: OpenAI items before their conversation (deleting a
    # conversation leaves its items behind), then stored responses, Twilio, Meta.
    position = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["erasure", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["erasure", "kind", "remote_id"], name="one_remote_deletion_per_copy"),
            # Retention and orphans: one row per copy, however often a purge or a late reply names it.
            models.UniqueConstraint(
                fields=["kind", "remote_id"],
                condition=models.Q(erasure__isnull=True),
                name="one_unattached_remote_deletion_per_copy",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.remote_id}: {self.get_status_display()}"
