"""Staff actions on a conversation: take over, assign, hand back, write, send a template, and
the helpdesk's triage (resolve, reopen, snooze, labels, private notes, per-agent read markers).

One holder at a time: the conversation row is locked for every action, only the holder writes,
and anyone else must take the conversation over explicitly first. Every action is audited, and
takeover and hand-back leave an internal note that the model reads with the rest of the context.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.audit import record_security_event
from accounts.models import SecurityEvent
from conversations import events, notify, providers
from conversations.dispatch import SEND_OUTBOUND, enqueue_after_commit
from conversations.models import Attachment, AuditEntry, Conversation, Label, Message, ReadMarker, staff_name
from conversations.providers.base import describe_template
from conversations.selectors.inbox import get_last_customer_provider_message_id
from profiles.models import Contact
from telemetry import metrics

logger = logging.getLogger(__name__)

HUMAN = Conversation.Mode.HUMAN
MAX_SNOOZE = timedelta(days=90)


class StaffActionRefused(Exception):
    code = "refused"


class NotHolder(StaffActionRefused):
    code = "not_holder"


class WindowClosed(StaffActionRefused):
    code = "window_closed"


class TemplatesUnsupported(StaffActionRefused):
    code = "templates_unsupported"


class NoConversation(StaffActionRefused):
    code = "no_conversation"


class InvalidAssignee(StaffActionRefused):
    code = "invalid_assignee"


class InvalidSnooze(StaffActionRefused):
    code = "invalid_snooze"


class FileRefused(StaffActionRefused):
    code = "file_refused"


# What staff may send, by extension: the types WhatsApp delivers as an image or a document.
SENDABLE_FILES = {
    ".jpg": ("image", "image/jpeg"),
    ".jpeg": ("image", "image/jpeg"),
    ".png": ("image", "image/png"),
    ".pdf": ("document", "application/pdf"),
    ".txt": ("document", "text/plain"),
    ".docx": ("document", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ".xlsx": ("document", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
_IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}


def take_over_conversation(*, conversation_id: int, user: User) -> Conversation:
    """Switch a conversation to human mode held by `user`, taking it from another holder if any.

    A bot reply still being generated is dropped when it is stored (replies.py locks the same row).
    """
    name = staff_name(user)
    conversation = _give(
        conversation_id,
        holder=user,
        actor=user,
        note=f"Staff member {name} took over this conversation. Until it is handed back, the assistant "
        "messages are written by them, not by you.",
        label=f"{name} took over",
        action="conversation.taken_over",
    )
    logger.info("Conversation %s taken over by staff user %s.", conversation.pk, user.pk)
    return conversation


def assign_conversation(*, conversation_id: int, user: User, assignee_id: int) -> Conversation:
    """Give a conversation to a colleague (active staff): they hold it in human mode, as if they
    had taken it over; the bot falls silent as on a takeover."""
    assignee = User.objects.filter(pk=assignee_id, is_active=True, is_staff=True).first()
    if assignee is None:
        raise InvalidAssignee("Assign to an active staff member.")
    if assignee.pk == user.pk:
        return take_over_conversation(conversation_id=conversation_id, user=user)
    name, assignee_name = staff_name(user), staff_name(assignee)
    conversation = _give(
        conversation_id,
        holder=assignee,
        actor=user,
        note=f"Staff member {name} assigned this conversation to {assignee_name}. Until it is handed back, "
        f"the assistant messages are written by {assignee_name}, not by you.",
        label=f"{name} assigned to {assignee_name}",
        action="conversation.assigned",
    )
    logger.info("Conversation %s assigned to staff user %s by %s.", conversation.pk, assignee.pk, user.pk)
    return conversation


def _give(conversation_id: int, *, holder: User, actor: User, note: str, label: str, action: str) -> Conversation:
    """Human mode held by `holder` (its needs-a-person flag cleared), with a note for the model."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        if conversation.mode == HUMAN and conversation.assigned_to_id == holder.pk:
            return conversation
        previous_holder_id = conversation.assigned_to_id
        conversation.mode = HUMAN
        conversation.assigned_to = holder
        conversation.taken_over_at = timezone.now()
        conversation.needs_human = False
        conversation.save(update_fields=["mode", "assigned_to", "taken_over_at", "needs_human", "updated_at"])
        _write_note(conversation, note, label=label)
        detail = {"previous_holder_id": previous_holder_id}
        if holder.pk != actor.pk:
            detail["assignee_id"] = holder.pk
        _audit(actor, action, conversation, detail)
        record_security_event(
            action=SecurityEvent.Action.TAKEOVER,
            actor=actor,
            target=f"conversations.conversation #{conversation.pk}",
            detail=detail,
        )
        notify.conversation_changed(conversation_id=conversation.pk)
        events.emit(events.TAKEN_OVER, conversation_id=conversation.pk, staff_user_id=holder.pk)
    metrics.count_takeover(action="take_over" if holder.pk == actor.pk else "assign")
    return conversation


def resolve_conversation(*, conversation_id: int, user: User) -> Conversation:
    """Mark a conversation resolved (its needs-a-person flag and snooze cleared); the customer's
    next message reopens it."""
    conversation = _triage(
        conversation_id,
        user,
        "conversation.resolved",
        resolved_at=timezone.now(),
        snoozed_until=None,
        needs_human=False,
    )
    events.emit(events.CONVERSATION_RESOLVED, conversation_id=conversation.pk, reason="staff", staff_user_id=user.pk)
    return conversation


def reopen_conversation(*, conversation_id: int, user: User) -> Conversation:
    """Undo a resolve."""
    return _triage(conversation_id, user, "conversation.reopened", resolved_at=None)


def snooze_conversation(*, conversation_id: int, user: User, until: datetime) -> Conversation:
    """Hide a conversation from the open views until `until` (or the customer's next message)."""
    now = timezone.now()
    if until <= now or until > now + MAX_SNOOZE:
        raise InvalidSnooze("Snooze until a time in the future, at most 90 days ahead.")
    return _triage(conversation_id, user, "conversation.snoozed", snoozed_until=until, resolved_at=None)


def unsnooze_conversation(*, conversation_id: int, user: User) -> Conversation:
    return _triage(conversation_id, user, "conversation.unsnoozed", snoozed_until=None)


def set_conversation_labels(*, conversation_id: int, user: User, label_ids: list[int]) -> Conversation:
    """Replace a conversation's labels (unknown ids are ignored)."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        labels = list(Label.objects.filter(pk__in=label_ids))
        conversation.labels.set(labels)
        conversation.save(update_fields=["updated_at"])
        _audit(user, "conversation.labelled", conversation, {"labels": sorted(label.name for label in labels)})
        notify.conversation_changed(conversation_id=conversation.pk)
    return conversation


def add_private_note(*, conversation_id: int, user: User, text: str) -> Message:
    """Store a note for colleagues: never sent to the customer, never in the model's input
    (selectors/prompt.py and the web chat read only the customer's, the bot's and staff's words)."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        note = Message.objects.create(
            conversation=conversation,
            direction=Message.Direction.OUTBOUND,
            author=Message.Author.PRIVATE_NOTE,
            staff_user=user,
            kind=Message.Kind.TEXT,
            text=text,
            provider=conversation.provider,
            status=Message.Status.HANDLED,
        )
        _audit(user, "conversation.private_note", conversation, {"message_id": note.pk})
        notify.message_created(note)
    return note


def hand_back_conversation(*, conversation_id: int, user: User) -> Conversation:
    """Return a conversation held by `user` to the bot."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        if conversation.mode != HUMAN:
            return conversation
        _require_holder(conversation, user)
        _hand_back(conversation, actor=user, reason="staff")
    return conversation


def hand_back_idle_conversations() -> int:
    """Hand back to the bot every conversation in human mode with no message for
    HUMAN_MODE_IDLE_MINUTES; returns how many."""
    cutoff = timezone.now() - timedelta(minutes=settings.HUMAN_MODE_IDLE_MINUTES)
    idle = Conversation.objects.filter(mode=HUMAN, taken_over_at__lt=cutoff).exclude(
        Exists(
            Message.objects.filter(conversation=OuterRef("pk"), created_at__gte=cutoff).exclude(
                author=Message.Author.NOTE
            )
        )
    )
    handed_back = 0
    for conversation_id in idle.values_list("pk", flat=True)[:500]:
        with transaction.atomic():
            # Re-checked under the lock: the holder may have written since the query above.
            conversation = idle.select_for_update().filter(pk=conversation_id).first()
            if conversation is not None:
                _hand_back(conversation, actor=None, reason="idle")
                handed_back += 1
    return handed_back


def send_staff_message(*, conversation_id: int, user: User, text: str) -> Message:
    """Store a staff message in a conversation `user` holds and enqueue its send."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        _require_holder(conversation, user)
        _require_open_window(conversation)
        message = _queue_outbound(conversation, user, text=text)
        _audit(user, "message.sent_by_staff", conversation, {"message_id": message.pk})
    return message


def send_template_message(
    *, conversation_id: int, user: User, name: str, language: str, parameters: list[str]
) -> Message:
    """Store an approved WhatsApp template message in a conversation `user` holds and enqueue its send."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        _require_holder(conversation, user)
        transport = providers.transport_class_for(conversation)
        if not transport.has_templates:
            raise TemplatesUnsupported(f"{transport.label} has no templates (and no 24-hour window): write a message.")
        template = {"name": name, "language": language, "parameters": parameters}
        summary = describe_template(name=name, language=language, parameters=parameters)
        message = _queue_outbound(conversation, user, text=summary, template=template)
        _audit(user, "template.sent_by_staff", conversation, {"message_id": message.pk, "template": name})
    return message


def send_to_contact(*, contact_id: int, user: User, text: str = "", template: dict[str, Any] | None = None) -> Message:
    """Store a message (or an approved template) to a contact in their latest open conversation
    on any channel, whoever holds it, and enqueue its send: a text only within the customer's
    24-hour window."""
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .filter(profile__contact_id=contact_id, status=Conversation.Status.OPEN)
            .order_by("-last_customer_message_at", "-pk")
            .first()
        )
        if conversation is None:
            Contact.objects.get(pk=contact_id)  # an unknown contact is a 404
            raise NoConversation("The contact has no open conversation to write in.")
        if template is None:
            _require_open_window(conversation)
            message = _queue_outbound(conversation, user, text=text)
        else:
            transport = providers.transport_class_for(conversation)
            if not transport.has_templates:
                raise TemplatesUnsupported(f"{transport.label} has no templates (and no 24-hour window).")
            summary = describe_template(**template)
            message = _queue_outbound(conversation, user, text=summary, template=dict(template))
        _audit(user, "message.sent_through_api", conversation, {"message_id": message.pk})
    return message


def send_staff_file(*, conversation_id: int, user: User, upload: UploadedFile, caption: str = "") -> Message:
    """Store a file (image or document) with its caption in a conversation `user` holds and enqueue
    its send through the conversation's channel, within the channel's types and size limits."""
    filename = os.path.basename(upload.name or "file")[-200:]
    kind, content_type = _check_file(upload, filename)
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        _require_holder(conversation, user)
        transport = providers.transport_class_for(conversation)
        if not transport.has_media:
            raise FileRefused(f"{transport.label} cannot send files.")
        _require_open_window(conversation)
        message = _queue_outbound(conversation, user, text=caption, kind=kind)
        attachment = Attachment(
            message=message,
            content_type=content_type,
            size_bytes=upload.size,
            original_filename=filename,
            status=Attachment.Status.STORED,
        )
        attachment.file.save(filename, upload, save=True)
        _audit(user, "file.sent_by_staff", conversation, {"message_id": message.pk, "kind": kind})
    return message


def _check_file(upload: UploadedFile, filename: str) -> tuple[str, str]:
    kind, content_type = SENDABLE_FILES.get(os.path.splitext(filename)[1].lower(), ("", ""))
    if not kind:
        raise FileRefused(f"Send an image or a document: {', '.join(SENDABLE_FILES)}.")
    if upload.size is None or upload.size > settings.MEDIA_MAX_BYTES[kind]:
        raise FileRefused(f"Files of this kind may be at most {settings.MEDIA_MAX_BYTES[kind] // 1024 // 1024} MB.")
    head = upload.read(8)
    upload.seek(0)
    expected = _IMAGE_FORMATS.get(content_type)
    if expected is not None:
        from PIL import Image, UnidentifiedImageError  # Pillow: only where staff send an image

        try:
            with Image.open(upload) as image:
                is_right = image.format == expected
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            is_right = False
        upload.seek(0)
        if not is_right:
            raise FileRefused("This file is not the image its name says.")
    elif content_type == "application/pdf" and not head.startswith(b"%PDF"):
        raise FileRefused("This file is not a PDF.")
    return kind, content_type


def show_staff_typing(*, conversation_id: int, user: User) -> bool:
    """Show the customer that staff are typing, where the channel has it (WhatsApp shows "typing…"
    with the read receipt of their last message). A courtesy: False when it was not shown."""
    conversation = Conversation.objects.select_related("profile").get(pk=conversation_id)
    _require_holder(conversation, user)
    transport = providers.for_conversation(conversation)
    last_inbound = get_last_customer_provider_message_id(conversation_id=conversation_id)
    if not transport.has_read_receipts or not last_inbound:
        return False
    try:
        transport.mark_read(last_inbound)
    except Exception as exc:  # the customer just does not see "typing…"
        logger.warning("Typing indicator for conversation %s failed: %s", conversation_id, exc)
        return False
    return True


def mark_conversation_read(*, conversation_id: int, user: User, up_to_message_id: int) -> None:
    """Move `user`'s read marker forward (never back). Unread counts are per agent; an agent who
    never opened a conversation counts from its team marker (`Conversation.last_read_message_id`)."""
    marker, created = ReadMarker.objects.get_or_create(
        conversation_id=conversation_id, user=user, defaults={"last_read_message_id": up_to_message_id}
    )
    changed = created or ReadMarker.objects.filter(pk=marker.pk, last_read_message_id__lt=up_to_message_id).update(
        last_read_message_id=up_to_message_id
    )
    if changed:
        notify.conversation_changed(conversation_id=conversation_id)


def _triage(conversation_id: int, user: User, action: str, **changes: Any) -> Conversation:
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        for field, value in changes.items():
            setattr(conversation, field, value)
        conversation.save(update_fields=[*changes, "updated_at"])
        detail = {"until": changes["snoozed_until"].isoformat()} if changes.get("snoozed_until") else {}
        _audit(user, action, conversation, detail)
        notify.conversation_changed(conversation_id=conversation.pk)
    return conversation


def _require_holder(conversation: Conversation, user: User) -> None:
    if conversation.mode != HUMAN or conversation.assigned_to_id != user.pk:
        holder = staff_name(conversation.assigned_to) if conversation.assigned_to_id else ""
        raise NotHolder(f"{holder} holds this conversation." if holder else "Take the conversation over first.")


def _require_open_window(conversation: Conversation) -> None:
    if not conversation.is_window_open:
        raise WindowClosed("The customer's last message is over 24 hours old: send an approved template.")


def _hand_back(conversation: Conversation, *, actor: User | None, reason: str) -> None:
    holder = staff_name(conversation.assigned_to)
    conversation.mode = Conversation.Mode.BOT
    conversation.assigned_to = None
    conversation.taken_over_at = None
    conversation.save(update_fields=["mode", "assigned_to", "taken_over_at", "updated_at"])
    who = f"Staff member {holder}" if holder else "Staff"
    why = " after a period of inactivity" if reason == "idle" else ""
    _write_note(
        conversation,
        f"{who} handed this conversation back to you{why}. Read what they wrote above: it was said on "
        "behalf of the business, so do not repeat or contradict it.",
        label=f"{holder or 'Staff'} handed back to the bot{' (idle)' if reason == 'idle' else ''}",
    )
    _audit(actor, "conversation.handed_back", conversation, {"reason": reason})
    notify.conversation_changed(conversation_id=conversation.pk)
    events.emit(events.HANDED_BACK, conversation_id=conversation.pk, reason=reason)
    metrics.count_takeover(action="idle_hand_back" if reason == "idle" else "hand_back")
    logger.info("Conversation %s handed back to the bot (%s).", conversation.pk, reason)


def _write_note(conversation: Conversation, text: str, *, label: str) -> Message:
    note = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.NOTE,
        kind=Message.Kind.SYSTEM,
        text=text,
        staff_label=label,
        provider=conversation.provider,
        status=Message.Status.HANDLED,
    )
    notify.message_created(note)
    return note


def _queue_outbound(
    conversation: Conversation,
    user: User,
    *,
    text: str,
    template: dict[str, Any] | None = None,
    kind: str = Message.Kind.TEXT,
) -> Message:
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.STAFF,
        staff_user=user,
        kind=kind,
        provider=conversation.provider,
        status=Message.Status.PENDING,
        text=text,
        template=template or {},
    )
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    notify.message_created(message)
    enqueue_after_commit(SEND_OUTBOUND, message.pk)
    return message


def _audit(actor: User | None, action: str, conversation: Conversation, detail: dict[str, Any]) -> None:
    AuditEntry.objects.create(actor=actor, action=action, conversation=conversation, detail=detail)
