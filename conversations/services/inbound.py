"""What arrives from the providers: customer messages and delivery statuses."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet, Subquery
from django.utils import timezone

from conversations import notify
from conversations.dispatch import PROCESS_INBOUND, RECORD_INBOUND, enqueue_after_commit
from conversations.media.services import record_inbound_media
from conversations.models import Conversation, Message, MessagePart, ProcessedMessage
from conversations.providers.base import InboundMessage, ParsedWebhook, StatusUpdate
from profiles.models import ClientProfile

logger = logging.getLogger(__name__)

S = Message.Status
# A status only ever moves forward. `failed` may follow anything short of delivery.
_RANK: dict[str, int] = {S.PENDING: 0, S.SENDING: 1, S.UNKNOWN: 1, S.SENT: 2, S.DELIVERED: 3, S.READ: 4, S.PLAYED: 5}
_FAILABLE: list[str] = [S.PENDING, S.SENDING, S.UNKNOWN, S.SENT]


def receive_webhook(*, parsed: ParsedWebhook) -> None:
    """Accept every message and apply every status of one provider delivery."""
    for inbound in parsed.messages:
        accept_inbound(inbound=inbound)
    for update in parsed.statuses:
        apply_status(update=update)


def accept_inbound(*, inbound: InboundMessage) -> bool:
    """Durably receive a provider's message and enqueue its recording; False if delivered before.

    This is all a webhook does per message, so it can answer in milliseconds: one row, the
    dedup gate, holding the parsed message until a worker records it (`record_accepted`). Its
    unique constraint absorbs retried and concurrent deliveries, also of messages erased since.
    Call it outside a transaction, as the webhook views do.
    """
    try:
        # Webhook requests are not atomic: this INSERT is its own transaction, committed before
        # we answer, with no BEGIN/COMMIT round trips; a duplicate fails it and changes nothing.
        processed = ProcessedMessage.objects.create(
            provider=inbound.provider,
            provider_message_id=ProcessedMessage.key_for(inbound.provider_message_id),
            pending=inbound.to_json(),
        )
    except IntegrityError:
        logger.info("Duplicate delivery of %s message ignored.", inbound.provider)
        return False
    if not recorder_is_notified():
        enqueue_after_commit(RECORD_INBOUND, processed.pk)
    return True


def recorder_is_notified() -> bool:
    """True when the INSERT itself wakes the workers' recorder (PostgreSQL NOTIFY from a
    trigger), so the webhook has no broker publish to pay for (services/recorder.py)."""
    return settings.INBOUND_NOTIFY and connection.vendor == "postgresql"


def record_accepted(*, processed_id: int) -> Message | None:
    """Record a message a webhook accepted; None if it was recorded already (the task ran twice),
    is quarantined, or failed to record (counted: quarantined after INBOUND_RECORD_MAX_ATTEMPTS).

    Raises the database's connection errors: the database, not this delivery, is at fault.
    """
    return _record(processed_id)[0]


def _record(processed_id: int) -> tuple[Message | None, bool]:
    """record_accepted, and whether this attempt failed."""
    try:
        recorded = _record_batch(ProcessedMessage.objects.filter(pk=processed_id), limit=1)
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:
        _count_record_failure(processed_id, exc)
        return None, True
    return (recorded[0] if recorded else None), False


def _count_record_failure(processed_id: int, exc: Exception) -> None:
    """One more failed attempt; the last allowed one quarantines the delivery, logged once."""
    waiting = ProcessedMessage.objects.filter(pk=processed_id, quarantined_at__isnull=True)
    waiting.update(record_attempts=F("record_attempts") + 1, record_error=type(exc).__name__[:100])
    if waiting.filter(record_attempts__gte=settings.INBOUND_RECORD_MAX_ATTEMPTS).update(quarantined_at=timezone.now()):
        logger.error(
            "Accepted delivery %s could not be recorded in %s attempts (%s); quarantined: see the admin's "
            "processed messages, where staff retry or drop it.",
            processed_id,
            settings.INBOUND_RECORD_MAX_ATTEMPTS,
            type(exc).__name__,
            exc_info=exc,
        )
    else:
        logger.warning(
            "Accepted delivery %s could not be recorded (%s); trying again.", processed_id, type(exc).__name__
        )


# Accepted deliveries recorded per transaction: a few statements for the whole batch.
RECORD_BATCH = 100


def record_pending_inbound(*, received_before: datetime | None = None, limit: int = 1000) -> int:
    """Record accepted messages still waiting (their task was lost, or a data officer needs
    them stored before an export or erasure), oldest first; quarantined ones are left. The
    number recorded or failed: while it is `limit`, more may wait (the recorder goes on).

    Up to RECORD_BATCH deliveries are recorded in one transaction, in a few statements whatever
    their number. A batch that fails is recorded one by one, so each failure counts against its
    own delivery and holds up no other."""
    waiting = ProcessedMessage.objects.filter(pending__isnull=False, quarantined_at__isnull=True)
    if received_before is not None:
        waiting = waiting.filter(received_at__lt=received_before)
    done = 0
    while done < limit:
        size = min(RECORD_BATCH, limit - done)
        try:
            count = len(_record_batch(waiting, limit=size))
        except (OperationalError, InterfaceError):
            raise  # the database is unreachable: nothing else would succeed either
        except Exception:
            # Deliveries that failed before go after the others: a batch of ones that cannot be
            # recorded delays fresh ones by one pass at most, and each is quarantined after a few.
            ids = waiting.order_by("record_attempts", "received_at").values_list("pk", flat=True)[:size]
            outcomes = [_record(processed_id) for processed_id in ids]
            count = sum(message is not None or failed for message, failed in outcomes)
        done += count
        if count < size:
            break  # nothing more waits (or the rest is another recorder's)
    return done


def _record_batch(waiting: QuerySet[ProcessedMessage], *, limit: int) -> list[Message]:
    """Record up to `limit` of the `waiting` deliveries in one transaction: the messages, in the
    order they arrived. Empty when none waits (or all are being recorded by another recorder)."""
    with transaction.atomic():
        # The row locks make a concurrent recorder skip these rows; once this commits, their
        # `pending` is emptied and nobody records them again.
        rows = list(
            waiting.filter(pending__isnull=False, quarantined_at__isnull=True)
            .select_for_update(skip_locked=True)
            .order_by("record_attempts", "received_at", "pk")
            .values_list("pk", "pending")[:limit]
        )
        if not rows:
            return []
        messages = _store_inbound_batch([InboundMessage.from_json(pending or {}) for _, pending in rows])
        ProcessedMessage.objects.filter(pk__in=[pk for pk, _ in rows]).update(pending=None)
    return messages


class _AlreadyProcessed(Exception):
    pass


def record_inbound(*, inbound: InboundMessage) -> Message | None:
    """Pass the dedup gate and record a message in one transaction; None if it was delivered before.

    For channels that hand us a message inside our own process (web chat); provider webhooks
    go through `accept_inbound` instead.
    """
    try:
        with transaction.atomic():
            try:
                # The gate is the transaction's first statement, so a duplicate just rolls it back.
                ProcessedMessage.objects.create(
                    provider=inbound.provider, provider_message_id=ProcessedMessage.key_for(inbound.provider_message_id)
                )
            except IntegrityError as exc:
                raise _AlreadyProcessed from exc
            [message] = _store_inbound_batch([inbound])
            return message
    except _AlreadyProcessed:
        logger.info("Duplicate delivery of %s message ignored.", inbound.provider)
        return None


def _store_inbound_batch(inbounds: list[InboundMessage]) -> list[Message]:
    """The customers' profiles, open conversations and Messages, in a few statements whatever
    the count; each message's processing enqueued after commit. Call inside a transaction."""
    profiles = _profiles_for(inbounds)
    conversations = _open_conversations_for(inbounds, profiles)
    now = timezone.now()
    conversation_ids = sorted({conversation.pk for conversation in conversations.values()})
    if len(conversation_ids) > 1:
        # Locked in id order, so two recorders touching the same conversations cannot deadlock.
        list(Conversation.objects.select_for_update().filter(pk__in=conversation_ids).order_by("pk").values_list("pk"))
    # A customer who writes again reopens a resolved conversation and wakes a snoozed one.
    Conversation.objects.filter(pk__in=conversation_ids).update(
        last_customer_message_at=now, updated_at=now, resolved_at=None, snoozed_until=None
    )
    messages = Message.objects.bulk_create(
        [
            Message(
                conversation=conversations[_conversation_key(inbound)],
                direction=Message.Direction.INBOUND,
                author=Message.Author.CUSTOMER,
                kind=inbound.kind,
                text=inbound.text,
                provider=inbound.provider,
                provider_message_id=inbound.provider_message_id,
                provider_timestamp=inbound.timestamp,
                status=Message.Status.RECEIVED,
            )
            for inbound in inbounds
        ]
    )
    record_inbound_media(pairs=list(zip(messages, inbounds, strict=True)))
    notify.messages_created(messages)
    for message, inbound in zip(messages, inbounds, strict=True):
        # Answered after the burst window: quick follow-ups then share one reply (services/bursts.py).
        enqueue_after_commit(PROCESS_INBOUND, message.pk, countdown=settings.BURST_WINDOW_SECONDS)
        logger.info(
            "Recorded inbound %s message %s in conversation %s.", inbound.kind, message.pk, message.conversation_id
        )
    return messages


def _profile_key(inbound: InboundMessage) -> tuple[str, str]:
    return inbound.provider, inbound.external_user_id


def _conversation_key(inbound: InboundMessage) -> tuple[str, str, str, str]:
    return inbound.provider, inbound.external_user_id, inbound.channel, inbound.business_address


def _profiles_for(inbounds: list[InboundMessage]) -> dict[tuple[str, str], ClientProfile]:
    """Each sender's profile, created when new; a changed number or display name is kept."""
    latest = {_profile_key(inbound): inbound for inbound in inbounds}  # the newest words win
    profiles = _find_profiles(latest)
    missing = [inbound for key, inbound in latest.items() if key not in profiles]
    if missing:
        # A concurrent recorder may create the same customer: its row wins, ours is skipped.
        ClientProfile.objects.bulk_create(
            [
                ClientProfile(
                    provider=inbound.provider,
                    external_id=inbound.external_user_id,
                    phone_number=inbound.phone_number,
                    display_name=inbound.display_name,
                )
                for inbound in missing
            ],
            ignore_conflicts=True,
        )
        profiles.update(_find_profiles({_profile_key(inbound): inbound for inbound in missing}))
    for key, inbound in latest.items():
        profile = profiles[key]
        changes = {}
        if inbound.phone_number and inbound.phone_number != profile.phone_number:
            changes["phone_number"] = inbound.phone_number
        if inbound.display_name and inbound.display_name != profile.display_name:
            changes["display_name"] = inbound.display_name
        if changes:
            ClientProfile.objects.filter(pk=profile.pk).update(**changes, updated_at=timezone.now())
    return profiles


def _find_profiles(by_key: dict[tuple[str, str], InboundMessage]) -> dict[tuple[str, str], ClientProfile]:
    ids_by_provider: dict[str, list[str]] = {}
    for provider, external_id in by_key:
        ids_by_provider.setdefault(provider, []).append(external_id)
    found = {}
    for provider, external_ids in ids_by_provider.items():
        for profile in ClientProfile.objects.filter(provider=provider, external_id__in=external_ids):
            found[(profile.provider, profile.external_id)] = profile
    return found


def _open_conversations_for(
    inbounds: list[InboundMessage], profiles: dict[tuple[str, str], ClientProfile]
) -> dict[tuple[str, str, str, str], Conversation]:
    wanted = {_conversation_key(inbound): inbound for inbound in inbounds}
    conversations = _find_open_conversations(wanted, profiles)
    missing = [inbound for key, inbound in wanted.items() if key not in conversations]
    if missing:
        # One open conversation per customer and number is a constraint: a concurrent one wins.
        Conversation.objects.bulk_create(
            [
                Conversation(
                    profile=profiles[_profile_key(inbound)],
                    channel=inbound.channel,
                    business_address=inbound.business_address,
                    status=Conversation.Status.OPEN,
                )
                for inbound in missing
            ],
            ignore_conflicts=True,
        )
        conversations.update(_find_open_conversations(wanted, profiles))
    return conversations


def _find_open_conversations(
    wanted: dict[tuple[str, str, str, str], InboundMessage], profiles: dict[tuple[str, str], ClientProfile]
) -> dict[tuple[str, str, str, str], Conversation]:
    profile_keys = {profile.pk: key for key, profile in profiles.items()}
    candidates = Conversation.objects.filter(
        profile_id__in=sorted({profiles[_profile_key(inbound)].pk for inbound in wanted.values()}),
        status=Conversation.Status.OPEN,
    )
    found = {}
    for conversation in candidates:
        key = (*profile_keys[conversation.profile_id], conversation.channel, conversation.business_address)
        if key in wanted:
            found[key] = conversation
    return found


def apply_status(*, update: StatusUpdate) -> bool:
    """Move an outbound message's delivery status forward; False if nothing changed.

    Statuses arrive out of order and more than once: the conditional update only lets a
    status replace one ranked below it. A status for a message we do not know is ignored.
    """
    messages = Message.objects.filter(direction=Message.Direction.OUTBOUND, provider=update.provider)
    ref = MessagePart.parse_client_ref(update.client_ref) if update.client_ref else None
    if ref is not None and ref[1] is not None:
        # An earlier part of a split reply: its statuses name only the part (the last part's
        # stand for the message). Its id settles a send of it whose answer was lost.
        return bool(_record_part_id(update, MessagePart.objects.filter(message__uid=ref[0], index=ref[1])))
    if update.status == S.FAILED:
        lower = _FAILABLE
    else:
        lower = [status for status, rank in _RANK.items() if rank < _RANK[update.status]]
    changes = {
        "status": update.status,
        "error_code": update.error_code,
        "error_title": update.error_title[:255],
        "updated_at": timezone.now(),
    }
    # One statement in the common case: the provider's id is known, the status moves.
    target = messages.filter(provider_message_id=update.provider_message_id)
    changed = target.filter(status__in=lower).update(**changes)
    if not changed and ref is not None and not target.exists():
        # Our send's answer was lost after the provider took it: the status tells us its id.
        target = messages.filter(uid=ref[0]).filter(
            Q(provider_message_id__isnull=True) | Q(provider_message_id=update.provider_message_id)
        )
        if target.update(provider_message_id=update.provider_message_id):
            last_part = MessagePart.objects.filter(message__uid=ref[0]).order_by("-index").values("pk")[:1]
            _record_part_id(update, MessagePart.objects.filter(pk__in=Subquery(last_part)))
        changed = target.filter(status__in=lower).update(**changes)
    if not changed:
        logger.debug("Status %s for %s changed nothing.", update.status, update.provider)
    else:
        notify.message_status_changed(provider=update.provider, provider_message_id=update.provider_message_id)
    return bool(changed)


def _record_part_id(update: StatusUpdate, parts: QuerySet[MessagePart]) -> int:
    """Give the part its provider id, unless it has one (a re-send's is never overwritten)."""
    return parts.filter(
        message__provider=update.provider, message__direction=Message.Direction.OUTBOUND, provider_message_id=""
    ).update(provider_message_id=update.provider_message_id, sent_at=timezone.now())
