"""What arrives from the providers: customer messages and delivery statuses."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet, Subquery
from django.utils import timezone

from conversations import events, notify
from conversations.dispatch import PROCESS_INBOUND, RECORD_INBOUND, enqueue_after_commit
from conversations.media.services import record_inbound_media
from conversations.models import Conversation, Message, MessagePart, ProcessedMessage
from conversations.providers.base import InboundMessage, ParsedWebhook, StatusUpdate
from conversations.selectors.recording import (
    clear_pending,
    list_identities,
    list_open_conversations,
    lock_waiting_deliveries,
    mark_customer_wrote,
)
from profiles.models import ClientProfile, Contact
from telemetry import context, metrics

logger = logging.getLogger(__name__)

S = Message.Status
# A status only ever moves forward. `failed` may follow anything short of delivery.
_RANK: dict[str, int] = {S.PENDING: 0, S.SENDING: 1, S.UNKNOWN: 1, S.SENT: 2, S.DELIVERED: 3, S.READ: 4, S.PLAYED: 5}
_FAILABLE: list[str] = [S.PENDING, S.SENDING, S.UNKNOWN, S.SENT]


def receive_webhook(*, parsed: ParsedWebhook) -> int:
    """Accept every message and apply every status of one provider delivery; the number of
    messages that were new (not delivered before)."""
    accepted = sum(accept_inbound(inbound=inbound) for inbound in parsed.messages)
    for update in parsed.statuses:
        apply_status(update=update)
    return accepted


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
            # The request id goes with it to the recorder, then to the tasks that answer it.
            pending={**inbound.to_json(), PENDING_REQUEST_ID: context.request_id.get()},
        )
    except IntegrityError:
        logger.info("Duplicate delivery of %s message ignored.", inbound.provider)
        return False
    if not recorder_is_notified():
        enqueue_after_commit(RECORD_INBOUND, processed.pk)
    return True


# The key of the accepting request's id in ProcessedMessage.pending (InboundMessage.from_json
# ignores it).
PENDING_REQUEST_ID = "request_id"


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
        recorded = _record_batch(limit=1, processed_id=processed_id)
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
            count = len(_record_batch(limit=size, received_before=received_before))
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


def _record_batch(
    *, limit: int, processed_id: int | None = None, received_before: datetime | None = None
) -> list[Message]:
    """Record up to `limit` waiting deliveries (the one with `processed_id`, or those received
    before `received_before`) in one transaction: the messages, in the order they arrived.
    Empty when none waits (or all are being recorded by another recorder)."""
    with transaction.atomic():
        # The row locks make a concurrent recorder skip these rows; once this commits, their
        # `pending` is emptied and nobody records them again.
        rows = lock_waiting_deliveries(limit=limit, processed_id=processed_id, received_before=received_before)
        if not rows:
            return []
        customers, ours = [], 0
        for processed, is_from_our_number in rows:
            pending = processed.pending or {}
            inbound = InboundMessage.from_json(pending)
            if is_from_our_number:
                # A status callback posted to the wrong URL, or two of our numbers (two bots)
                # writing to each other, which would answer each other forever. (One from the
                # very number it wrote to never gets here: the provider module leaves it out,
                # providers/validation.is_own_number.)
                ours += 1
            else:
                customers.append((inbound, pending.get(PENDING_REQUEST_ID) or ""))
        if ours:
            logger.warning("%d message(s) from the business's own numbers not recorded: never a customer.", ours)
        messages = (
            _store_inbound_batch([inbound for inbound, _ in customers], request_ids=[rid for _, rid in customers])
            if customers
            else []
        )
        clear_pending(processed_ids=[processed.pk for processed, _ in rows])
    now = timezone.now()
    for processed, _ in rows:
        metrics.observe_recording_lag((now - processed.received_at).total_seconds())
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
            [message] = _store_inbound_batch([inbound], request_ids=[context.request_id.get()])
            return message
    except _AlreadyProcessed:
        logger.info("Duplicate delivery of %s message ignored.", inbound.provider)
        return None


def _store_inbound_batch(inbounds: list[InboundMessage], *, request_ids: list[str]) -> list[Message]:
    """The customers' profiles, open conversations and Messages, in a few statements whatever
    the count; each message's processing enqueued after commit, under the id of the request
    that brought it. Call inside a transaction."""
    profiles, are_new = _profiles_for(inbounds)
    conversations = _open_conversations_for(inbounds, profiles, are_new=are_new)
    now = timezone.now()
    # A customer who writes again reopens a resolved conversation and wakes a snoozed one.
    mark_customer_wrote(conversation_ids=list({conversation.pk for conversation in conversations.values()}), at=now)
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
    for message, inbound, request_id in zip(messages, inbounds, request_ids, strict=True):
        events.emit(
            events.MESSAGE_RECEIVED, message_id=message.pk, conversation_id=message.conversation_id, kind=inbound.kind
        )
        # Answered after the burst window: quick follow-ups then share one reply (services/bursts.py).
        enqueue_after_commit(
            PROCESS_INBOUND, message.pk, countdown=settings.BURST_WINDOW_SECONDS, request_id=request_id
        )
        with context.bound(request=request_id or context.request_id.get(), conversation=message.conversation_id):
            logger.info(
                "Recorded inbound %s message %s in conversation %s.", inbound.kind, message.pk, message.conversation_id
            )
    return messages


def _profile_key(inbound: InboundMessage) -> tuple[str, str]:
    return inbound.provider, inbound.external_user_id


def _conversation_key(inbound: InboundMessage) -> tuple[str, str, str, str]:
    return inbound.provider, inbound.external_user_id, inbound.channel, inbound.business_address


def _profiles_for(inbounds: list[InboundMessage]) -> tuple[dict[tuple[str, str], ClientProfile], bool]:
    """Each sender's identity, created when new (joining the contact of its E.164 number, else a
    contact of its own), and whether all of them are new; a changed number or display name is kept."""
    latest = {_profile_key(inbound): inbound for inbound in inbounds}  # the newest words win
    numbers = {inbound.phone_number for inbound in latest.values() if inbound.phone_number}
    profiles, same_number = _find_profiles(latest, numbers=numbers)
    missing = [inbound for key, inbound in latest.items() if key not in profiles]
    if missing:
        contacts = _contacts_for(missing, same_number)
        # A concurrent recorder may create the same identity: its row wins, ours is skipped.
        ClientProfile.objects.bulk_create(
            [
                ClientProfile(
                    contact_id=contacts[_profile_key(inbound)],
                    provider=inbound.provider,
                    external_id=inbound.external_user_id,
                    phone_number=inbound.phone_number,
                    display_name=inbound.display_name,
                )
                for inbound in missing
            ],
            ignore_conflicts=True,
        )
        created, _ = _find_profiles({_profile_key(inbound): inbound for inbound in missing}, numbers=set())
        profiles.update(created)
        # Lost that race: the contact made for the identity is left empty (one made for a number
        # is shared with the winner, and is not).
        orphans = [contacts[key] for key, profile in created.items() if profile.contact_id != contacts[key]]
        if orphans:
            Contact.objects.filter(pk__in=orphans, phone_number__isnull=True, identities__isnull=True).delete()
    for key, inbound in latest.items():
        profile = profiles[key]
        changes = {}
        if inbound.phone_number and inbound.phone_number != profile.phone_number:
            changes["phone_number"] = inbound.phone_number
        if inbound.display_name and inbound.display_name != profile.display_name:
            changes["display_name"] = inbound.display_name
        if changes:
            ClientProfile.objects.filter(pk=profile.pk).update(**changes, updated_at=timezone.now())
    return profiles, len(missing) == len(latest)


def _contacts_for(
    missing: list[InboundMessage], same_number: dict[str, list[ClientProfile]]
) -> dict[tuple[str, str], int]:
    """The contact id each new identity joins: the contact of an identity with the same E.164
    number, else the contact holding that number (created if none), else a new contact."""
    joined: dict[tuple[str, str], int] = {}
    wanted: dict[tuple[str, str], Contact] = {}
    by_number: dict[str, Contact] = {}
    for inbound in missing:
        key, number = _profile_key(inbound), inbound.phone_number
        if number in same_number:
            joined[key] = _contact_of_number(number, same_number[number])
        elif number:
            wanted[key] = by_number.setdefault(number, Contact(phone_number=number))
        else:
            wanted[key] = Contact()
    if wanted:
        # One statement, race-free: the unique number makes a concurrent first message of the
        # same number (another channel, another recorder) wait for this row and then share it.
        Contact.objects.bulk_create(
            list({id(contact): contact for contact in wanted.values()}.values()),
            update_conflicts=True,
            unique_fields=["phone_number"],
            update_fields=["phone_number"],
        )
        joined.update({key: contact.pk for key, contact in wanted.items()})
    return joined


def _contact_of_number(number: str, identities: list[ClientProfile]) -> int:
    """The contact a number belongs to when identities with it exist (after a split, several may
    have it: the one holding the number as its key, else the oldest identity's)."""
    for identity in identities:
        if identity.contact.phone_number == number:
            return identity.contact_id
    return min(identities, key=lambda identity: identity.pk).contact_id


def _find_profiles(
    by_key: dict[tuple[str, str], InboundMessage], *, numbers: set[str]
) -> tuple[dict[tuple[str, str], ClientProfile], dict[str, list[ClientProfile]]]:
    """The identities with these keys, and (one statement for both) those with these numbers."""
    found: dict[tuple[str, str], ClientProfile] = {}
    same_number: dict[str, list[ClientProfile]] = {}
    for profile in list_identities(keys=by_key, numbers=numbers):
        if (profile.provider, profile.external_id) in by_key:
            found[(profile.provider, profile.external_id)] = profile
        if profile.phone_number in numbers:
            same_number.setdefault(profile.phone_number, []).append(profile)
    return found, same_number


def _open_conversations_for(
    inbounds: list[InboundMessage], profiles: dict[tuple[str, str], ClientProfile], *, are_new: bool = False
) -> dict[tuple[str, str, str, str], Conversation]:
    wanted = {_conversation_key(inbound): inbound for inbound in inbounds}
    # New identities have no conversation yet (unless a concurrent recorder just made it, which
    # the insert below absorbs): no need to look first.
    conversations = {} if are_new else _find_open_conversations(wanted, profiles)
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
        for inbound in missing:
            conversation = conversations[_conversation_key(inbound)]
            events.emit(
                events.CONVERSATION_CREATED,
                conversation_id=conversation.pk,
                contact_id=conversation.profile_id,
                channel=conversation.channel,
            )
    return conversations


def _find_open_conversations(
    wanted: dict[tuple[str, str, str, str], InboundMessage], profiles: dict[tuple[str, str], ClientProfile]
) -> dict[tuple[str, str, str, str], Conversation]:
    profile_keys = {profile.pk: key for key, profile in profiles.items()}
    profile_ids = [profiles[_profile_key(inbound)].pk for inbound in wanted.values()]
    found = {}
    for conversation in list_open_conversations(profile_ids=profile_ids):
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
        if update.status == S.FAILED:
            metrics.count_delivery_failure(provider=update.provider, error_code=update.error_code)
            for message_id, conversation_id, author in target.values_list("pk", "conversation_id", "author")[:1]:
                events.emit(
                    events.MESSAGE_FAILED,
                    message_id=message_id,
                    conversation_id=conversation_id,
                    author=author,
                    error_code=update.error_code,
                )
        notify.message_status_changed(provider=update.provider, provider_message_id=update.provider_message_id)
    return bool(changed)


def _record_part_id(update: StatusUpdate, parts: QuerySet[MessagePart]) -> int:
    """Give the part its provider id, unless it has one (a re-send's is never overwritten)."""
    return parts.filter(
        message__provider=update.provider, message__direction=Message.Direction.OUTBOUND, provider_message_id=""
    ).update(provider_message_id=update.provider_message_id, sent_at=timezone.now())
