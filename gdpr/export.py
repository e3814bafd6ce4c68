"""Subject access and portability (GDPR art. 15 and 20): everything held about one person.

The document is JSON (schema: gdpr/schemas/gdpr_export.schema.json). Models are exported
generically (every concrete field), so a field added to a model later is exported without a
change here.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePosixPath
from typing import IO, Any
from uuid import UUID

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.db import models
from django.utils import timezone

from accounts.audit import record_security_event
from accounts.models import SecurityEvent
from conversations.models import (
    Attachment,
    AuditEntry,
    CapturedWebhook,
    Conversation,
    Message,
    ModelUsage,
    Provider,
    ToolCall,
)
from conversations.providers import transport_class_for
from conversations.providers.simulator import SIMULATOR_NUMBER_ID
from gdpr.subjects import Subject
from gdpr.traces import list_subject_admin_log, list_subject_captures
from profiles.models import ClientProfile, Contact
from telemetry import metrics

EXPORT_SCHEMA_ID = "https://whatsbot.invalid/schemas/gdpr_export/1"
JSON_NAME = "export.json"

# Who receives the data, as the record of processing lists them (README, "Data").
RECIPIENTS = [
    {
        "name": "Meta Platforms Ireland Ltd (WhatsApp Business Cloud API)",
        "role": "processor",
        "provider": "meta",
        "data": "Messages to and from the business number, media, phone number or WhatsApp id, profile name.",
        "purpose": "Carrying the conversation over WhatsApp.",
    },
    {
        "name": "Twilio Inc. (Programmable Messaging: WhatsApp and SMS)",
        "role": "processor",
        "provider": "twilio",
        "data": "Messages to and from the business number, media, phone number, WhatsApp profile name.",
        "purpose": "Carrying the conversation over WhatsApp or SMS.",
    },
    {
        "name": "OpenAI (Responses API, speech-to-text)",
        "role": "processor",
        "provider": "openai",
        "data": "Recent message texts of the conversation, voice notes to transcribe, images to describe.",
        "purpose": "Writing the bot's answers; transcribing voice notes.",
    },
]
# Who wrote a message, as the export states it (Message.author and, for the bot, which responder).
WRITTEN_BY_CUSTOMER = "customer"
WRITTEN_BY_STAFF = "staff"
WRITTEN_BY_AI_MODEL = "ai_model"  # an OpenAI model wrote it
WRITTEN_BY_OFFLINE_RESPONDER = "offline_responder"  # the built-in responder, no AI model
WRITTEN_BY_BUSINESS_TEXT = "business_text"  # a fixed text of the business (consent, commands, apology)
WRITTEN_BY_NOTE = "internal_note"
# Staff's note for colleagues (live inbox): never sent to the person, never in a model's input.
WRITTEN_BY_PRIVATE_NOTE = "staff_private_note"
_OFFLINE_MODEL = "offline"
_CARRIERS = {Provider.META, Provider.TWILIO}
# Values a provenance mapping uses for "the model inferred this" (see _inferred_profile_fields).
_MODEL_SOURCES = {"model", "ai", "inferred", "extracted", "extraction"}


def build_subject_export(*, subject: Subject) -> dict[str, Any]:
    """The export document of a subject (reads only)."""
    profiles = [_export_profile(profile) for profile in subject.profiles]
    evidence = _recipient_evidence(subject)
    notes = [
        "Values marked inferred were produced by an AI model (speech-to-text, profile extraction), not given by you.",
        "Each message says who wrote it (written_by): you, a member of staff, an AI model (OpenAI), the "
        "built-in offline responder (no AI model), or a fixed text of the business; and which processor "
        "carried it (carried_by; none for the web chat and the simulator, which never leave this server).",
        "Tool calls are requests the AI model made to the business's own systems (an order lookup…) "
        "while answering you, with what it read back.",
    ]
    return {
        "$schema": EXPORT_SCHEMA_ID,
        "generated_at": timezone.now().isoformat(),
        "subject": {"identifier_kind": subject.kind, "identifier": subject.normalized},
        "contacts": [_export_contact(contact) for contact in subject.contacts],
        "profiles": profiles,
        "recipients": [
            {
                **recipient,
                "received_data_of_subject": bool(evidence[recipient["provider"]]),
                "evidence": evidence[recipient["provider"]],
            }
            for recipient in RECIPIENTS
        ],
        "webhook_captures": [_export_capture(capture) for capture in list_subject_captures(subject)],
        "admin_history": [_export_log_entry(entry) for entry in list_subject_admin_log(subject)],
        "notes": notes,
    }


def export_subject(
    *, subject: Subject, out: IO[bytes], fmt: str = "json", actor: User | None = None, actor_label: str = ""
) -> dict[str, Any]:
    """Write the subject's export to `out` (JSON, or a ZIP with the JSON and the media files),
    and record the access as an audit entry on each profile. Returns the document."""
    document = build_subject_export(subject=subject)
    encoded = json.dumps(document, ensure_ascii=False, indent=2).encode()
    if fmt == "zip":
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(JSON_NAME, encoded)
            for storage_name, archive_path in _media_files(document):
                with default_storage.open(storage_name, "rb") as source, archive.open(archive_path, "w") as target:
                    for chunk in iter(lambda: source.read(1 << 20), b""):
                        target.write(chunk)
    elif fmt == "json":
        out.write(encoded)
    else:
        raise ValueError(f"unknown export format {fmt!r}: use json or zip")
    AuditEntry.objects.bulk_create(
        AuditEntry(
            actor=actor,
            action="gdpr.export",
            profile=profile,
            detail={"format": fmt, "performed_by": actor_label or (actor.get_username() if actor else "")},
        )
        for profile in subject.profiles
    )
    for profile in subject.profiles:
        record_security_event(
            action=SecurityEvent.Action.EXPORT,
            actor=actor,
            actor_label=actor_label,
            target=f"profiles.clientprofile #{profile.pk}",
            detail={"format": fmt},
        )
    metrics.count_gdpr_job(job="export", outcome="done")
    return document


def _recipient_evidence(subject: Subject) -> dict[str, list[str]]:
    """Per processor, what of the subject's data actually reached it (empty: nothing did)."""
    evidence: dict[str, list[str]] = {recipient["provider"]: [] for recipient in RECIPIENTS}
    for conversation in Conversation.objects.filter(profile__in=subject.profile_ids).order_by("pk"):
        if carrier := _carrier(conversation):
            evidence[carrier].append(f"conversation {conversation.pk} ({conversation.get_channel_display()})")
    messages = Message.objects.filter(conversation__profile__in=subject.profile_ids)
    answered = messages.filter(author=Message.Author.BOT).exclude(model__in=["", _OFFLINE_MODEL]).count()
    if answered:
        evidence["openai"].append(
            f"{answered} repl(ies) written by an AI model from the conversation's recent messages"
        )
    transcribed = Attachment.objects.filter(message__in=messages).exclude(transcript="").count()
    if transcribed:
        evidence["openai"].append(f"{transcribed} voice note(s) or audio file(s) transcribed")
    other_calls = (
        ModelUsage.objects.filter(conversation__profile__in=subject.profile_ids)
        .exclude(model__in=["", _OFFLINE_MODEL])
        .count()
    )
    if other_calls:
        evidence["openai"].append(f"{other_calls} other model call(s) (summaries, discarded replies)")
    return evidence


def _carrier(conversation: Conversation) -> str | None:
    """The processor that carried a conversation's messages; None when they never left this server."""
    if conversation.business_address == SIMULATOR_NUMBER_ID:
        return None
    provider = str(transport_class_for(conversation).provider)
    return provider if provider in _CARRIERS else None


def _written_by(message: Message) -> str:
    if message.author == Message.Author.CUSTOMER:
        return WRITTEN_BY_CUSTOMER
    if message.author == Message.Author.STAFF:
        return WRITTEN_BY_STAFF
    if message.author == Message.Author.NOTE:
        return WRITTEN_BY_NOTE
    if message.author == Message.Author.PRIVATE_NOTE:
        return WRITTEN_BY_PRIVATE_NOTE
    if message.model == _OFFLINE_MODEL:
        return WRITTEN_BY_OFFLINE_RESPONDER
    return WRITTEN_BY_AI_MODEL if message.model else WRITTEN_BY_BUSINESS_TEXT


def _export_capture(capture: CapturedWebhook) -> dict[str, Any]:
    return {**_fields(capture), "body": bytes(capture.body).decode("utf-8", errors="replace")}


def _export_log_entry(entry: LogEntry) -> dict[str, Any]:
    return {
        "action_time": _jsonable(entry.action_time),
        "object": f"{entry.content_type.app_label}.{entry.content_type.model}" if entry.content_type else "",
        "object_id": entry.object_id or "",
        "object_repr": entry.object_repr,
        "action": {ADDITION: "added", CHANGE: "changed", DELETION: "deleted"}.get(
            entry.action_flag, str(entry.action_flag)
        ),
        "change_message": entry.get_change_message(),
        "staff_user_id": entry.user_id,
    }


def _media_files(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for profile in document["profiles"]:
        for conversation in profile["conversations"]:
            for message in conversation["messages"]:
                for attachment in message["attachments"]:
                    if attachment["archive_path"]:
                        yield attachment["fields"]["file"], attachment["archive_path"]


def _export_contact(contact: Contact) -> dict[str, Any]:
    return {
        "contact_id": contact.pk,
        "fields": _fields(contact),
        "inferred_fields": _inferred_profile_fields(contact),
        "audit_entries": [
            _fields(entry) for entry in AuditEntry.objects.filter(contact=contact).order_by("created_at", "pk")
        ],
    }


def _export_profile(profile: ClientProfile) -> dict[str, Any]:
    conversations = list(Conversation.objects.filter(profile=profile).order_by("created_at", "pk"))
    carriers = {conversation.pk: _carrier(conversation) for conversation in conversations}
    messages_by_conversation: dict[int, list[dict[str, Any]]] = {}
    messages = (
        Message.objects.filter(conversation__profile=profile)
        .prefetch_related("attachments")
        .order_by("created_at", "pk")
    )
    for message in messages:
        messages_by_conversation.setdefault(message.conversation_id, []).append(
            _export_message(message, carried_by=carriers[message.conversation_id])
        )
    audit = AuditEntry.objects.filter(profile=profile) | AuditEntry.objects.filter(conversation__profile=profile)
    tool_calls = _export_tool_calls(profile)
    return {
        "profile_id": profile.pk,
        "fields": _fields(profile),
        "inferred_fields": _inferred_profile_fields(profile.contact),
        "consent": {
            "bot_messages": "opted_out" if profile.contact.opted_out_at else "allowed",
            "opted_out_at": _jsonable(profile.contact.opted_out_at),
            "opted_in_at": _jsonable(profile.contact.opted_in_at),
        },
        "conversations": [
            {
                **_fields(conversation),
                "carried_by": carriers[conversation.pk],
                "messages": messages_by_conversation.get(conversation.pk, []),
                "tool_calls": tool_calls.get(conversation.pk, []),
            }
            for conversation in conversations
        ],
        "audit_entries": [_fields(entry) for entry in audit.distinct().order_by("created_at", "pk")],
    }


def _export_message(message: Message, *, carried_by: str | None) -> dict[str, Any]:
    written_by = _written_by(message)
    return {
        **_fields(message),
        "written_by": written_by,
        "written_by_model": written_by == WRITTEN_BY_AI_MODEL,
        # A private note never left this server, whatever carried the conversation.
        "carried_by": None if message.author == Message.Author.PRIVATE_NOTE else carried_by,
        "attachments": [_export_attachment(attachment) for attachment in message.attachments.all()],
    }


def _export_attachment(attachment: Attachment) -> dict[str, Any]:
    name = attachment.file.name or ""
    is_stored = bool(name) and default_storage.exists(name)
    return {
        "fields": _fields(attachment),
        "transcript_inferred": bool(attachment.transcript),
        "file_stored": is_stored,
        "archive_path": f"media/{attachment.pk}/{PurePosixPath(name).name}" if is_stored else "",
    }


# --- Tool calls: the functions the model called while answering (agents' HTTP tools, searches,
# hand-overs); their arguments and results are the person's data.


def _export_tool_calls(profile: ClientProfile) -> dict[int, list[dict[str, Any]]]:
    calls: dict[int, list[dict[str, Any]]] = {}
    for call in ToolCall.objects.filter(conversation__profile=profile).order_by("created_at", "pk"):
        calls.setdefault(call.conversation_id, []).append(_fields(call))
    return calls


def _inferred_profile_fields(contact: Contact) -> list[str]:
    """Contact fields whose value the model extracted, read from any provenance mapping on the
    contact (a JSON field like {"first_name": "model"} or {"first_name": {"source": "model"}})."""
    names = {field.name for field in Contact._meta.concrete_fields}
    inferred = set()
    for field in Contact._meta.concrete_fields:
        value = getattr(contact, field.attname)
        if not isinstance(field, models.JSONField) or not isinstance(value, dict):
            continue
        for key, source in value.items():
            source = source.get("source") if isinstance(source, dict) else source
            if key in names and isinstance(source, str) and source.lower() in _MODEL_SOURCES:
                inferred.add(key)
    return sorted(inferred)


def _fields(instance: models.Model) -> dict[str, Any]:
    return {field.attname: _jsonable(getattr(instance, field.attname)) for field in instance._meta.concrete_fields}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if hasattr(value, "name") and hasattr(value, "storage"):  # a FieldFile
        return value.name or ""
    return value
