"""Sending stored outbound messages through the conversation's transport."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from conversations import notify, providers
from conversations.models import Conversation, Message, MessagePart
from conversations.providers.base import (
    DeliveryUnknown,
    PermanentProviderError,
    SendResult,
    TransientProviderError,
    Transport,
)
from conversations.services.consent import is_blocked_by_opt_out
from conversations.services.parts import get_or_create_parts
from conversations.services.retries import RetryLater, backoff_delay

logger = logging.getLogger(__name__)

S = Message.Status


def send_message(*, message_id: int) -> Message | None:
    """Send one pending outbound message: pending -> sending -> sent | failed | unknown.

    The sending claim changes exactly one row, so a task run twice sends once. A send that
    may have reached the provider is never repeated: it becomes `unknown` until a status
    callback tells. Raises RetryLater when the provider failed transiently and attempts remain.
    """
    if _discard_if_taken_over(message_id):
        return None
    claimed = Message.objects.filter(pk=message_id, status=S.PENDING, direction=Message.Direction.OUTBOUND).update(
        status=S.SENDING, send_attempts=F("send_attempts") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return None
    message = Message.objects.select_related("conversation__profile").get(pk=message_id)
    if is_blocked_by_opt_out(message=message):
        _move(message, S.SENDING, S.FAILED, error_code="opted_out", error_title="The customer opted out (STOP)")
        return None
    try:
        result = _send_through_provider(message)
    except TransientProviderError as exc:
        if message.send_attempts < settings.SEND_MAX_ATTEMPTS:
            logger.warning("Send of message %s failed (%s); retrying.", message.pk, exc)
            _move(message, S.SENDING, S.PENDING, error_code=exc.code, error_title=exc.title)
            raise RetryLater(backoff_delay(attempt=message.send_attempts, retry_after=exc.retry_after)) from exc
        logger.error("Send of message %s failed after %s attempts: %s", message.pk, message.send_attempts, exc)
        _move(message, S.SENDING, S.FAILED, error_code=exc.code, error_title=exc.title)
    except PermanentProviderError as exc:
        logger.error("Provider refused message %s: %s", message.pk, exc)
        _move(message, S.SENDING, S.FAILED, error_code=exc.code, error_title=exc.title)
    except DeliveryUnknown as exc:
        logger.warning("Send of message %s has an unknown outcome (%s); waiting for statuses.", message.pk, exc)
        _move(message, S.SENDING, S.UNKNOWN, error_code=exc.code, error_title=exc.title)
    else:
        # A status callback may have beaten us here (matched by uid): then only record the id.
        if not _move(
            message, S.SENDING, S.SENT, provider_message_id=result.provider_message_id, error_code="", error_title=""
        ):
            Message.objects.filter(pk=message.pk, provider_message_id__isnull=True).update(
                provider_message_id=result.provider_message_id
            )
        logger.info("Sent message %s via %s.", message.pk, message.provider)
    message.refresh_from_db()
    notify.message_status_changed(message_id=message.pk)
    return message


def _discard_if_taken_over(message_id: int) -> bool:
    """A bot reply stored just before a staff takeover is never sent: staff answer now."""
    discarded = Message.objects.filter(
        pk=message_id, status=S.PENDING, author=Message.Author.BOT, conversation__mode=Conversation.Mode.HUMAN
    ).update(
        status=S.FAILED,
        error_code="taken_over",
        error_title="Not sent: staff took over the conversation",
        updated_at=timezone.now(),
    )
    if discarded:
        logger.info("Bot message %s not sent: its conversation was taken over.", message_id)
        notify.message_status_changed(message_id=message_id)
    return bool(discarded)


def _send_through_provider(message: Message) -> SendResult:
    """Send the parts not sent yet, in order; the last part's id stands for the message.

    A part is marked sent as soon as the provider took it, so a retry after a failure on a
    later part resumes there and never sends a part twice.
    """
    transport = providers.for_conversation(message.conversation)
    parts = get_or_create_parts(message=message)
    result: SendResult | None = None
    for part in parts:
        if part.provider_message_id:
            result = SendResult(provider_message_id=part.provider_message_id)
            continue
        is_last = part.index == parts[-1].index
        result = _send_part(transport, message, part.text, client_ref=str(message.uid) if is_last else "")
        MessagePart.objects.filter(pk=part.pk).update(
            provider_message_id=result.provider_message_id, sent_at=timezone.now()
        )
    if result is None:  # get_or_create_parts gives at least one part, unless the message was deleted meanwhile
        raise PermanentProviderError("no_parts", "Nothing to send")
    return result


def _send_part(transport: Transport, message: Message, body: str, *, client_ref: str) -> SendResult:
    template = message.template
    if not template:
        return transport.send_text(body, client_ref=client_ref)
    # On Twilio the template `name` is the Content SID (HX…), which includes the language.
    return transport.send_template(
        name=template["name"],
        language=template.get("language", ""),
        parameters=template.get("parameters", []),
        client_ref=str(message.uid),
    )


def _move(message: Message, from_status: str, to_status: str, **fields: str) -> bool:
    return bool(
        Message.objects.filter(pk=message.pk, status=from_status).update(
            status=to_status, updated_at=timezone.now(), **fields
        )
    )
