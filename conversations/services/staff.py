"""Staff actions on a conversation: take over, hand back, write, send a template.

One holder at a time: the conversation row is locked for every action, only the holder writes,
and anyone else must take the conversation over explicitly first. Every action is audited, and
takeover and hand-back leave an internal note that the model reads with the rest of the context.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.audit import record_security_event
from accounts.models import SecurityEvent
from conversations import events, notify, providers
from conversations.dispatch import SEND_OUTBOUND, enqueue_after_commit
from conversations.models import AuditEntry, Conversation, Message, staff_name
from conversations.providers.base import describe_template
from profiles.models import Contact
from telemetry import metrics

logger = logging.getLogger(__name__)

HUMAN = Conversation.Mode.HUMAN


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


def take_over_conversation(*, conversation_id: int, user: User) -> Conversation:
    """Switch a conversation to human mode held by `user`, taking it from another holder if any.

    A bot reply still being generated is dropped when it is stored (replies.py locks the same row).
    """
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        if conversation.mode == HUMAN and conversation.assigned_to_id == user.pk:
            return conversation
        previous_holder_id = conversation.assigned_to_id
        conversation.mode = HUMAN
        conversation.assigned_to = user
        conversation.taken_over_at = timezone.now()
        conversation.needs_human = False
        conversation.save(update_fields=["mode", "assigned_to", "taken_over_at", "needs_human", "updated_at"])
        _write_note(
            conversation,
            f"Staff member {staff_name(user)} took over this conversation. Until it is handed back, the "
            "assistant messages are written by them, not by you.",
        )
        _audit(user, "conversation.taken_over", conversation, {"previous_holder_id": previous_holder_id})
        record_security_event(
            action=SecurityEvent.Action.TAKEOVER,
            actor=user,
            target=f"conversations.conversation #{conversation.pk}",
            detail={"previous_holder_id": previous_holder_id},
        )
        notify.conversation_changed(conversation_id=conversation.pk)
        events.emit(events.TAKEN_OVER, conversation_id=conversation.pk, staff_user_id=user.pk)
    metrics.count_takeover(action="take_over")
    logger.info("Conversation %s taken over by staff user %s.", conversation.pk, user.pk)
    return conversation


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
        if not conversation.is_window_open:
            raise WindowClosed("The customer's last message is over 24 hours old: send an approved template.")
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
            if not conversation.is_window_open:
                raise WindowClosed("The customer's last message is over 24 hours old: send an approved template.")
            message = _queue_outbound(conversation, user, text=text)
        else:
            transport = providers.transport_class_for(conversation)
            if not transport.has_templates:
                raise TemplatesUnsupported(f"{transport.label} has no templates (and no 24-hour window).")
            summary = describe_template(**template)
            message = _queue_outbound(conversation, user, text=summary, template=dict(template))
        _audit(user, "message.sent_through_api", conversation, {"message_id": message.pk})
    return message


def mark_conversation_read(*, conversation_id: int, up_to_message_id: int) -> None:
    """Move the staff read marker forward (never back)."""
    changed = Conversation.objects.filter(pk=conversation_id, last_read_message_id__lt=up_to_message_id).update(
        last_read_message_id=up_to_message_id
    )
    if changed:
        notify.conversation_changed(conversation_id=conversation_id)


def _require_holder(conversation: Conversation, user: User) -> None:
    if conversation.mode != HUMAN or conversation.assigned_to_id != user.pk:
        holder = staff_name(conversation.assigned_to) if conversation.assigned_to_id else ""
        raise NotHolder(f"{holder} holds this conversation." if holder else "Take the conversation over first.")


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
    )
    _audit(actor, "conversation.handed_back", conversation, {"reason": reason})
    notify.conversation_changed(conversation_id=conversation.pk)
    events.emit(events.HANDED_BACK, conversation_id=conversation.pk, reason=reason)
    metrics.count_takeover(action="idle_hand_back" if reason == "idle" else "hand_back")
    logger.info("Conversation %s handed back to the bot (%s).", conversation.pk, reason)


def _write_note(conversation: Conversation, text: str) -> Message:
    note = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.NOTE,
        kind=Message.Kind.SYSTEM,
        text=text,
        provider=conversation.provider,
        status=Message.Status.HANDLED,
    )
    notify.message_created(note)
    return note


def _queue_outbound(
    conversation: Conversation, user: User, *, text: str, template: dict[str, Any] | None = None
) -> Message:
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.STAFF,
        staff_user=user,
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
