"""Answering a customer message with the model."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from conversations import notify, providers
from conversations.ai import ModelReply, ModelUnavailable, is_offline
from conversations.dispatch import SEND_OUTBOUND, enqueue
from conversations.media.services import add_images_to_turns, prepare_inbound_media
from conversations.models import Conversation, Message
from conversations.selectors.answering import get_message_to_answer, newer_customer_message_sql
from conversations.services import agents, budgets, bursts, commands, context, knowledge
from conversations.services.consent import apply_consent_keywords
from conversations.services.handoff import HUMAN_COMING_REPLY, is_request_for_human, note_request_for_human
from conversations.services.orphans import OPENAI_RESPONSE, hand_over_orphaned_copies
from conversations.services.outbound import send_message, send_stored_reply
from conversations.services.parts import create_parts
from conversations.services.profiles import CLIENT_DETAILS, record_client_details
from conversations.services.retries import RetryLater, backoff_delay
from conversations.services.usage import count_spend
from conversations.services.workers import current_worker
from profiles.extraction import ClientInfo
from telemetry import context as log_context

logger = logging.getLogger(__name__)

S = Message.Status

# Kinds whose words the model can answer; reactions and system notices need no answer at all.
_MODEL_KINDS = {Message.Kind.TEXT, Message.Kind.INTERACTIVE, Message.Kind.LOCATION}
_SILENT_KINDS = {Message.Kind.REACTION, Message.Kind.SYSTEM}

APOLOGY = "Sorry, I can't answer right now. Please try again in a little while."
UNSUPPORTED_KIND_REPLY = (
    "Thanks for your message! I can only read text, voice messages, photos and locations for now. "
    "Could you write what you need in a message?"
)


def get_bot_instructions() -> str:
    path = settings.BOT_INSTRUCTIONS_FILE
    return Path(path).read_text(encoding="utf-8") if path else settings.BOT_INSTRUCTIONS


def reply_to_message(*, message_id: int, attempt: int = 1) -> Message | None:
    """Answer one customer message once: claim it, ask the model, store the reply, then send
    it. Returns the reply, or None when there is nothing (more) to do.

    Raises RetryLater when the model failed transiently and attempts remain.
    """
    if not _claim(message_id):
        # Answered already. Its reply, if the sweep gave it back to `pending` (the run that stored
        # it stopped before sending; it was stored `sending` in that run's name), is sent now.
        _send_unsent_reply(message_id)
        return None
    inbound = get_message_to_answer(message_id=message_id)
    log_context.bind_conversation(inbound.conversation_id)
    # Before anything else: Meta's media URLs expire in minutes, and staff want the file too.
    media = prepare_inbound_media(message=inbound)
    # STOP and START are always honoured, whoever has the conversation.
    consent = apply_consent_keywords(message=inbound)
    if consent.reply:
        return _store_reply(inbound, ModelReply(text=consent.reply, model=""))
    if consent.is_silent or inbound.kind in _SILENT_KINDS or inbound.conversation.mode != Conversation.Mode.BOT:
        _mark_handled(inbound)
        return None
    command_reply = commands.run_command(inbound=inbound)
    if command_reply is not None:
        return _store_reply(inbound, command_reply)
    # `has_newer` was read with the message: only then is the burst looked at.
    if getattr(inbound, "has_newer", True) and bursts.is_superseded(inbound=inbound):
        _mark_handled(inbound)  # the burst's newest message gets the one reply
        return None
    if attempt == 1:
        _begin_reply_work(inbound)
    if is_request_for_human(text=inbound.text):
        answer = ModelReply(text=HUMAN_COMING_REPLY, model="", wants_human=True)
    elif media.fallback_reply:
        answer = ModelReply(text=media.fallback_reply, model="")
    elif (inbound.kind in _MODEL_KINDS or media.is_readable) and (inbound.text.strip() or media.images):
        limit = budgets.take_reply_allowance(inbound=inbound) if attempt == 1 and not is_offline() else None
        if limit is not None:
            notice = budgets.note_limit_reached(inbound=inbound, limit=limit)
            if notice is None:  # told once already: nothing more is spent on this contact for now
                _mark_handled(inbound)
                return None
            return _store_reply(inbound, ModelReply(text=notice, model=""))
        answer = _ask_model(inbound, attempt, media.images)
    else:
        answer = ModelReply(text=UNSUPPORTED_KIND_REPLY, model="")
    reply = None
    try:
        reply = _keep_answer(inbound, answer)
    finally:
        # A response OpenAI stored but no reply row names (an earlier call of the turn, a reply
        # discarded, or the conversation erased while the model answered) could never be
        # erased later: it is deleted now.
        unnamed = list(answer.earlier_stored_response_ids)
        if reply is None or reply.openai_response_id != answer.stored_response_id:
            unnamed.append(answer.stored_response_id)
        hand_over_orphaned_copies(copies=[(OPENAI_RESPONSE, response_id) for response_id in unnamed])
    return reply


def _keep_answer(inbound: Message, answer: ModelReply) -> Message | None:
    """Record what the answer says about the customer, and store it as the reply unless it is
    superseded or the conversation was taken over (raises ObjectDoesNotExist once erased)."""
    if isinstance(answer.details, ClientInfo):  # who they are: kept even if the reply is not
        record_client_details(message=inbound, info=answer.details)
    if answer.wants_human:  # flagged only when no newer message takes the answer over
        if answer.model and bursts.is_superseded(inbound=inbound):
            _discard(inbound, answer)
            return None
        return _store_reply(inbound, note_request_for_human(inbound=inbound, answer=answer))
    # A model's answer overtaken by a newer customer message is discarded: checked as the reply
    # is stored, under the conversation's lock.
    return _store_reply(inbound, answer, unless_superseded=bool(answer.model))


def _discard(inbound: Message, answer: ModelReply) -> None:
    bursts.discard_reply(inbound=inbound, answer=answer)
    _mark_handled(inbound)


def _begin_reply_work(inbound: Message) -> None:
    """Show the customer we are on it (read receipt, typing where the channel has it)."""
    transport = providers.for_conversation(inbound.conversation)
    if transport.has_read_receipts and inbound.provider_message_id:
        try:
            transport.mark_read(inbound.provider_message_id)
        except Exception as exc:  # a courtesy: whatever goes wrong here must not cost the reply
            logger.warning("Read receipt for message %s failed: %s", inbound.pk, exc)


def _claim(message_id: int) -> bool:
    """received -> processing, changing exactly one row, in this worker's name (the sweep takes
    back the claims of a worker that stopped); a claim older than SWEEP_STALE_AFTER_SECONDS
    belonged to a worker that lost it and may be taken over. Written as SQL: the ORM took ten
    times longer to build it than PostgreSQL to run it (selectors/answering.py)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.SWEEP_STALE_AFTER_SECONDS)
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE conversations_message SET status = %s, claimed_by = %s, retry_at = NULL, updated_at = %s"
            " WHERE id = %s AND (status = %s OR (status = %s AND updated_at < %s))",
            [S.PROCESSING, current_worker(), adapt(now), message_id, S.RECEIVED, S.PROCESSING, adapt(stale)],
        )
        return cursor.rowcount == 1


def _ask_model(inbound: Message, attempt: int, images: tuple[str, ...] = ()) -> ModelReply:
    if is_offline():
        return knowledge.offline_answer(inbound=inbound)
    try:
        # `entry_agent_id` was read with the message (reply_to_message).
        agent = agents.get_answering_agent(
            conversation=inbound.conversation, entry_agent_id=getattr(inbound, "entry_agent_id", None)
        )
        # The agent's own instructions go first; these are the conversation's (style, profile, summary).
        request = context.build_model_request(inbound=inbound, instructions="")
        turns = add_images_to_turns(turns=request.turns, message=inbound, images=images)
        passages = knowledge.gather_for_reply(inbound=inbound, tags=agent.knowledge_tags if agent else ())
        # Gives the database connection back while the model and the tools answer (seconds).
        answer = agents.generate_agent_reply(
            inbound=inbound,
            agent=agent,
            default_instructions=get_bot_instructions(),
            context_instructions=request.instructions,
            turns=passages.with_passages(turns),
            conversation_id=request.openai_conversation_id,
            knowledge=passages,
            details=CLIENT_DETAILS,
        )
        return passages.attach_sources(answer)
    except ModelUnavailable as exc:
        if exc.is_transient and attempt < settings.OPENAI_MAX_ATTEMPTS:
            logger.warning("Model call %s for message %s failed (%s); retrying.", attempt, inbound.pk, exc)
            # Release the claim so the retried task (or, once it is overdue, the sweep) takes it again.
            delay = backoff_delay(attempt=attempt, retry_after=exc.retry_after)
            now = timezone.now()
            Message.objects.filter(pk=inbound.pk, status=Message.Status.PROCESSING).update(
                status=Message.Status.RECEIVED, retry_at=now + timedelta(seconds=delay), updated_at=now
            )
            raise RetryLater(delay) from exc
        logger.error("No model answer for message %s after %s attempt(s): %s", inbound.pk, attempt, exc)
        return ModelReply(text=APOLOGY, model="")


def _store_reply(inbound: Message, answer: ModelReply, *, unless_superseded: bool = False) -> Message | None:
    conversation = inbound.conversation
    try:
        with transaction.atomic():
            # Lock the conversation while it is the bot's, touching it for the inbox order: a
            # staff takeover committed before this point wins, and one waiting on this lock sees
            # the reply as already stored. With `unless_superseded`, one statement also checks
            # that no newer customer message is waiting for the answer (the common case).
            if not _touch_while_bots(inbound, unless_newer=unless_superseded):
                if unless_superseded and bursts.is_superseded(inbound=inbound):
                    _discard(inbound, answer)
                    return None
                # A newer message past the burst's longest wait does not stop this answer.
                if not (unless_superseded and _touch_while_bots(inbound, unless_newer=False)):
                    logger.info("Conversation %s was taken over; reply to %s discarded.", conversation.pk, inbound.pk)
                    _mark_handled(inbound)
                    return None
            cost = count_spend(conversation=conversation, answer=answer)
            reply = Message.objects.create(
                in_reply_to=inbound,
                author=Message.Author.BOT,
                conversation=conversation,
                direction=Message.Direction.OUTBOUND,
                provider=conversation.provider,
                text=answer.text,
                # Claimed already by this task, which sends it after commit (send_stored_reply):
                # no claim and no read back. If the task stops first, the sweep takes it back.
                status=Message.Status.SENDING,
                claimed_by=current_worker(),
                send_attempts=1,
                model=answer.model,
                input_tokens=answer.input_tokens,
                output_tokens=answer.output_tokens,
                openai_response_id=answer.stored_response_id,
                knowledge_sources=list(answer.sources),
                agent_name=answer.agent,
                cost=cost,
            )
            # Split for the channel now, in this transaction: the send reads nothing back.
            parts = create_parts(message=reply)
            _mark_handled(inbound)
            notify.message_created(reply)
            send = partial(send_stored_reply, reply=reply, parts=parts)
            transaction.on_commit(partial(_send_reply, reply.pk, send))
    except IntegrityError:
        # Another run of this task stored its reply first: one bot reply per message is a constraint.
        return Message.objects.filter(in_reply_to=inbound, author=Message.Author.BOT).first()
    return reply


def _touch_while_bots(inbound: Message, *, unless_newer: bool) -> bool:
    """Touch (and so lock) the conversation while it is the bot's and, `unless_newer`, while no
    newer customer message waits; False when it changed nothing. SQL: see selectors/answering.py."""
    sql = "UPDATE conversations_conversation SET updated_at = %s WHERE id = %s AND mode = %s"
    params: list[Any] = [connection.ops.adapt_datetimefield_value(timezone.now()), inbound.conversation_id]
    params.append(Conversation.Mode.BOT)
    if unless_newer:
        sql += f" AND NOT EXISTS({newer_customer_message_sql(conversation='%s', message='%s')})"
        params += [inbound.conversation_id, inbound.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


def _send_reply(reply_id: int, send: Callable[[], object]) -> None:
    """Send a reply in this same task: no broker round trip, no second task. A send the provider
    asks us to retry later goes to the send task, with its backoff."""
    try:
        send()
    except RetryLater as exc:
        enqueue(SEND_OUTBOUND, reply_id, countdown=exc.countdown)


def _send_unsent_reply(message_id: int) -> None:
    reply_id = (
        Message.objects.filter(in_reply_to_id=message_id, author=Message.Author.BOT, status=Message.Status.PENDING)
        .values_list("pk", flat=True)
        .first()
    )
    if reply_id is not None:
        _send_reply(reply_id, partial(send_message, message_id=reply_id))


def _mark_handled(message: Message) -> None:
    """Answered (or nothing to answer). SQL: every customer message ends here (see _claim)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE conversations_message SET status = %s, updated_at = %s WHERE id = %s",
            [S.HANDLED, connection.ops.adapt_datetimefield_value(timezone.now()), message.pk],
        )
