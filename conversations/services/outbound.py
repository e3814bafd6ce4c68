"""Sending stored outbound messages through the conversation's transport.

A send moves pending -> sending -> sent | failed | unknown. The claim (`sending`) means "ours,
nothing sent yet". Each part's own marker, committed just before its provider call, means "may
have reached the provider": whatever fails before it (a database error, a crash) leaves the
message safe to send again, and only a part marked without a provider id ever makes a message
`unknown`. Only whoever set a part's marker sends that part, so a part is never sent twice,
however many tasks or sweeps run for its message.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import InterfaceError, OperationalError, connection
from django.db.models import Exists, F
from django.utils import timezone

from conversations import events, notify, providers
from conversations.connections import release_connection
from conversations.media.selectors import get_outbound_attachment, get_outbound_media_url
from conversations.models import Attachment, Conversation, Message, MessagePart
from conversations.providers.base import (
    DeliveryUnknown,
    PermanentProviderError,
    SendResult,
    TransientProviderError,
    Transport,
)
from conversations.services.consent import is_blocked_by_opt_out
from conversations.services.orphans import hand_over_sent_message
from conversations.services.parts import get_or_create_parts, parts_in_doubt
from conversations.services.retries import RetryLater, backoff_delay
from conversations.services.workers import current_worker
from telemetry import context, metrics

logger = logging.getLogger(__name__)

S = Message.Status


class _PartTaken(Exception):
    """A part of the message carries another sender's marker: not ours to send."""


class _Stopped(Exception):
    """Staff took the conversation over, or its person opted out, since the message was read."""


def send_message(*, message_id: int) -> Message | None:
    """Send one pending outbound message: pending -> sending -> sent | failed | unknown.

    The sending claim changes exactly one row, so a task run twice sends once. A send that
    may have reached the provider is never repeated here: it becomes `unknown` until a status,
    a lookup or one deliberate re-send settles it (services/unknown.py). Raises RetryLater when
    the provider failed transiently, or our side failed before the call, and attempts remain.
    """
    claimed = Message.objects.filter(pk=message_id, status=S.PENDING, direction=Message.Direction.OUTBOUND).update(
        status=S.SENDING,
        claimed_by=current_worker(),
        send_attempts=F("send_attempts") + 1,
        retry_at=None,
        updated_at=timezone.now(),
    )
    if not claimed:
        return None
    try:
        message = _read_claimed(message_id)
    except ObjectDoesNotExist:
        raise  # erased meanwhile: nothing left to send or to release
    except Exception as exc:
        _after_our_failure(message_id, exc)
        return None
    return _send_claimed(message, parts=None)


def send_stored_reply(*, reply: Message, parts: list[MessagePart]) -> Message | None:
    """Send a reply its task stored just now already claimed (`sending`, one attempt, this
    worker's name; replies.py), with the parts stored beside it and the conversation, contact
    and question it was written for in hand: nothing is claimed or read back. A staff takeover
    or an opt-out committed since is still honoured: the first part's marker is only set while
    neither happened (see _mark_attempted)."""
    return _send_claimed(reply, parts=parts)


def _read_claimed(message_id: int) -> Message:
    return Message.objects.select_related("conversation__profile__contact", "in_reply_to").get(pk=message_id)


def _send_claimed(message: Message, *, parts: list[MessagePart] | None) -> Message | None:
    """The send of a message this worker claimed, read with its conversation, contact and question."""
    moved = False
    try:
        context.bind_conversation(message.conversation_id)
        if _is_stopped(message):
            return None
        result = _send_through_provider(message, parts or get_or_create_parts(message=message))
    except ObjectDoesNotExist:
        raise  # erased meanwhile: nothing left to send or to release
    except _Stopped:
        return None
    except _PartTaken:
        logger.info("A part of message %s carries another sender's marker; leaving it to them.", message.pk)
        return None
    except TransientProviderError as exc:
        if message.send_attempts < settings.SEND_MAX_ATTEMPTS:
            logger.warning("Send of message %s failed (%s); retrying.", message.pk, exc)
            delay = backoff_delay(attempt=message.send_attempts, retry_after=exc.retry_after)
            _move(message, S.SENDING, S.PENDING, **_released(delay), error_code=exc.code, error_title=exc.title)
            raise RetryLater(delay) from exc
        logger.error("Send of message %s failed after %s attempts: %s", message.pk, message.send_attempts, exc)
        _move(message, S.SENDING, S.FAILED, error_code=exc.code, error_title=exc.title)
    except PermanentProviderError as exc:
        logger.error("Provider refused message %s: %s", message.pk, exc)
        _move(message, S.SENDING, S.FAILED, error_code=exc.code, error_title=exc.title)
    except DeliveryUnknown as exc:
        logger.warning("Send of message %s has an unknown outcome (%s); waiting for statuses.", message.pk, exc)
        _move(message, S.SENDING, S.UNKNOWN, error_code=exc.code, error_title=exc.title)
    except Exception as exc:
        _after_our_failure(message.pk, exc)
        return None
    else:
        # A re-sent message keeps the note of why it was re-sent.
        cleared = {} if message.resend_count else {"error_code": "", "error_title": ""}
        # A status callback may have beaten us here (matched by uid): then only record the id.
        sent = {"provider_message_id": result.provider_message_id, **cleared}
        moved = _move(message, [S.SENDING, S.UNKNOWN], S.SENT, **sent)
        if not moved:
            Message.objects.filter(pk=message.pk, provider_message_id__isnull=True).update(
                provider_message_id=result.provider_message_id
            )
        logger.info("Sent message %s via %s.", message.pk, message.provider)
    # Read before the refresh drops them: the status changed, not the conversation or the question.
    conversation, question = message.conversation, message.in_reply_to
    if moved:  # what the row now holds is known: no read back
        message.status = S.SENT
        for field, value in sent.items():
            setattr(message, field, value)
    else:
        message.refresh_from_db()
    _report_send(message, channel=conversation.channel, question=question)
    notify.message_status_changed(message_id=message.pk)
    return message


def _report_send(message: Message, *, channel: str, question: Message | None) -> None:
    """Count the send's outcome (sent, failed, unknown) and tell integrations; time a bot reply
    from its question."""
    metrics.count_send(channel=channel, status=message.status, error_code=message.error_code)
    if message.status in (S.SENT, S.FAILED):
        events.emit(
            events.MESSAGE_SENT if message.status == S.SENT else events.MESSAGE_FAILED,
            message_id=message.pk,
            conversation_id=message.conversation_id,
            author=message.author,
            error_code=message.error_code,
        )
    if message.status == S.SENT and message.author == Message.Author.BOT and question is not None:
        seconds = (timezone.now() - question.created_at).total_seconds()
        metrics.observe_reply_latency(channel=channel, seconds=seconds)


def _is_stopped(message: Message) -> bool:
    """A bot message not to send (any more), moved to failed with the reason: staff took its
    conversation over (they answer now), or its person opted out (the confirmation of that
    opt-out aside). Decided on the conversation and contact read with the message."""
    if message.author != Message.Author.BOT:
        return False
    if message.conversation.mode == Conversation.Mode.HUMAN:
        reason = {"error_code": "taken_over", "error_title": "Not sent: staff took over the conversation"}
    elif is_blocked_by_opt_out(message=message):
        reason = {"error_code": "opted_out", "error_title": "The customer opted out (STOP)"}
    else:
        return False
    if _move(message, S.SENDING, S.FAILED, **reason):
        logger.info("Bot message %s not sent: %s.", message.pk, reason["error_code"])
        notify.message_status_changed(message_id=message.pk)
    return True


def _send_through_provider(message: Message, parts: list[MessagePart]) -> SendResult:
    """Send the parts not sent yet, in order; the last part's id stands for the message.

    A part is marked sent as soon as the provider took it, so a retry after a failure on a
    later part resumes there and never sends a part twice.
    """
    transport = providers.for_conversation(message.conversation)
    # Read before any provider call: the connection is given back while the provider answers.
    attachment = get_outbound_attachment(message=message)
    result: SendResult | None = None
    # Checked once per send, as the first part not sent yet is marked (see _mark_attempted).
    guarded = message.author == Message.Author.BOT
    for part in parts:
        if part.provider_message_id:
            result = SendResult(provider_message_id=part.provider_message_id)
            continue
        _mark_attempted(message, part, guarded=guarded)
        guarded = False
        release_connection()  # while the provider answers
        try:
            result = _send_part(transport, message, part, is_last=part.index == parts[-1].index, attachment=attachment)
        except (TransientProviderError, PermanentProviderError):
            # The provider answered that it did not take the part: nothing of it went out.
            MessagePart.objects.filter(pk=part.pk).update(attempted_at=None)
            raise
        if not _record_part_sent(part, result.provider_message_id):
            # Erased while the provider took it: nothing names its copy there any more.
            hand_over_sent_message(provider=transport.provider, provider_message_id=result.provider_message_id)
            raise Message.DoesNotExist(f"message {message.pk} was erased during its send")
    if result is None:  # get_or_create_parts gives at least one part, unless the message was deleted meanwhile
        raise PermanentProviderError("no_parts", "Nothing to send")
    return result


def _mark_attempted(message: Message, part: MessagePart, *, guarded: bool) -> None:
    """Mark the part attempted in its own committed UPDATE: from here on it may reach the provider,
    and nobody else sends it. `guarded` (a bot message's first part of this send): only while its
    conversation is the bot's and its person has not opted out, in the same statement, since what
    the send has in hand may be older than a takeover or a STOP (send_stored_reply reads nothing
    back after the reply's transaction). When that stops it, the message is read again and
    decided on what it says now. Raises _Stopped, or _PartTaken when another sender marked it."""
    if guarded:
        if _set_marker(part, unless_stopped=message.conversation_id):
            return
        if _is_stopped(_read_claimed(message.pk)):
            raise _Stopped
    if not _set_marker(part):
        raise _PartTaken


def _set_marker(part: MessagePart, *, unless_stopped: int | None = None) -> bool:
    """Set the part's marker unless another sender set it (or it was sent); with `unless_stopped`
    (a conversation id), only while that conversation is the bot's and its person has not opted
    out. SQL: the ORM took ten times longer to build it than the database to run it."""
    sql = (
        "UPDATE conversations_messagepart SET attempted_at = %s"
        " WHERE id = %s AND attempted_at IS NULL AND provider_message_id = ''"
    )
    params: list[Any] = [connection.ops.adapt_datetimefield_value(timezone.now()), part.pk]
    if unless_stopped is not None:
        sql += (
            " AND EXISTS(SELECT 1 FROM conversations_conversation c"
            " JOIN profiles_clientprofile p ON p.id = c.profile_id JOIN profiles_contact k ON k.id = p.contact_id"
            " WHERE c.id = %s AND c.mode = %s AND k.opted_out_at IS NULL)"
        )
        params += [unless_stopped, Conversation.Mode.BOT]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


def _record_part_sent(part: MessagePart, provider_message_id: str) -> bool:
    """The provider took the part: its id, and when; False when the part is gone (erased). SQL:
    see _set_marker."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE conversations_messagepart SET provider_message_id = %s, sent_at = %s WHERE id = %s",
            [provider_message_id, connection.ops.adapt_datetimefield_value(timezone.now()), part.pk],
        )
        return cursor.rowcount == 1


def _send_part(
    transport: Transport, message: Message, part: MessagePart, *, is_last: bool, attachment: Attachment | None
) -> SendResult:
    client_ref = part.client_ref(is_last=is_last)
    template = message.template
    if attachment is not None and part.index == 0:  # a file staff sent: the first part is its caption
        return transport.send_media(
            url=get_outbound_media_url(attachment=attachment),
            kind=message.kind,
            caption=part.text,
            filename=attachment.original_filename,
            client_ref=client_ref,
        )
    if not template:
        return transport.send_text(part.text, client_ref=client_ref)
    # On Twilio the template `name` is the Content SID (HX…), which includes the language.
    return transport.send_template(
        name=template["name"],
        language=template.get("language", ""),
        parameters=template.get("parameters", []),
        client_ref=client_ref,
    )


def _after_our_failure(message_id: int, exc: Exception) -> None:
    """Our side failed after the claim (a database error, a bug): release the claim and retry,
    unless a part is in flight (the sweep settles that one). A database outage is retried until
    the database is back; anything else counts against SEND_MAX_ATTEMPTS. If the database
    refuses even this, the sweep releases the claim (SWEEP_REQUEUE_AFTER_SECONDS)."""
    is_outage = isinstance(exc, OperationalError | InterfaceError)
    logger.warning("Send of message %s stopped on our side: %s", message_id, exc, exc_info=not is_outage)
    attempts = Message.objects.filter(pk=message_id).values_list("send_attempts", flat=True).first()
    if attempts is None:
        return
    nothing_in_flight = Message.objects.filter(pk=message_id, status=S.SENDING).exclude(Exists(parts_in_doubt()))
    if not is_outage and attempts >= settings.SEND_MAX_ATTEMPTS:
        failed = nothing_in_flight.update(
            status=S.FAILED,
            error_code="internal_error",
            error_title=f"Not sent: {type(exc).__name__} after {attempts} attempts",
            updated_at=timezone.now(),
        )
        if failed:
            logger.error("Send of message %s given up after %s attempts.", message_id, attempts)
            notify.message_status_changed(message_id=message_id)
        return
    delay = backoff_delay(attempt=attempts)
    if nothing_in_flight.update(status=S.PENDING, **_released(delay)):
        raise RetryLater(delay) from exc


def _released(delay: float) -> dict[str, object]:
    """The fields of a claim given back for a retry in `delay` seconds (the sweep waits for it)."""
    now = timezone.now()
    return {"claimed_by": "", "retry_at": now + timedelta(seconds=delay), "updated_at": now}


def _move(message: Message, from_status: str | list[str], to_status: str, **fields: object) -> bool:
    """Move the message from one of `from_status` to `to_status`, setting `fields` too; False when
    it was in none of them. SQL, as every send moves at least once: the ORM took several times
    longer to build this UPDATE than the database to run it (selectors/answering.py)."""
    statuses = [from_status] if isinstance(from_status, str) else from_status
    changes = {"status": to_status, "updated_at": timezone.now(), **fields}
    columns = ", ".join(f"{name} = %s" for name in changes)  # plain fields: named as their columns
    adapt = connection.ops.adapt_datetimefield_value
    values: list[Any] = [adapt(value) if isinstance(value, datetime) else value for value in changes.values()]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE conversations_message SET {columns} WHERE id = %s"  # noqa: S608 (our own field names)
            f" AND status IN ({', '.join(['%s'] * len(statuses))})",
            [*values, message.pk, *statuses],
        )
        return cursor.rowcount == 1
