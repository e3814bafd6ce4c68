"""Settling sends whose outcome is unknown: never a silent loss, never a blind double send.

A message is `unknown` when a part of it was marked attempted and its provider id never
recorded: the call may have reached the provider (a timeout after sending, a worker killed
mid-call, a database error right after it). Beat runs `resolve_unknown_sends` every
SWEEP_INTERVAL_SECONDS; for each such part, once its call is surely over
(UNKNOWN_LOOKUP_AFTER_SECONDS):

- a status callback that named it (our reference, or the provider id) has settled it already;
- where the transport can look its messages up (Twilio), the lookup settles it: found, its id
  and status are recorded; proven absent, it is re-sent once;
- elsewhere no status within UNKNOWN_RESEND_AFTER_SECONDS means the provider did not take it:
  re-sent once. Meta has no lookup and sends `sent` within seconds, so a status later than that
  is the residual risk of a duplicate. The simulator and the web chat push in-process: their
  send is unknown only if a worker dies inside the push itself, and a re-send shows the reply
  twice at worst, on our own page.

A message is re-sent at most once; if that send's outcome is unknown too, it stays `unknown`
with the error code `unresolved` for staff. Every decision is logged once, counted in the
result, written on the message (error code and title, shown in the live inbox and the admin)
and, for a re-send, in the audit log.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from conversations import notify, providers
from conversations.dispatch import SEND_OUTBOUND, enqueue_after_commit
from conversations.models import AuditEntry, Message, MessagePart
from conversations.providers.base import ProviderError, StatusUpdate, Unsupported
from conversations.services.inbound import apply_status

logger = logging.getLogger(__name__)

S = Message.Status
RESENT = "resent"
UNRESOLVED = "unresolved"
# The provider's clock and ours may differ: a lookup reaches this far before the attempt.
_CLOCK_SKEW = timedelta(seconds=60)


def resolve_unknown_sends(*, limit: int = 100) -> dict[str, int]:
    """Settle what can be settled of the `unknown` sends; how many ended which way."""
    unknown = (
        Message.objects.filter(status=S.UNKNOWN)
        .exclude(error_code=UNRESOLVED)
        .select_related("conversation__profile__contact")
        .order_by("updated_at")[:limit]
    )
    counts: Counter[str] = Counter()
    for message in unknown:
        try:
            counts[_resolve(message)] += 1
        except Exception:  # one message's trouble must not keep the others unsettled
            logger.exception("Unknown send of message %s not settled this time.", message.pk)
            counts["error"] += 1
    if set(counts) - {"waiting"}:
        logger.warning("Unknown sends: %s", dict(counts))
    return dict(counts)


def _resolve(message: Message) -> str:
    now = timezone.now()
    parts = list(message.parts.order_by("index"))
    in_doubt = [(part, part.attempted_at) for part in parts if part.attempted_at and not part.provider_message_id]
    if not in_doubt:
        return _carry_on(message, parts)
    doubtful, attempted_at = in_doubt[0]
    if attempted_at > now - timedelta(seconds=settings.UNKNOWN_LOOKUP_AFTER_SECONDS):
        return "waiting"  # the call may still be running
    transport = providers.for_conversation(message.conversation)
    client_ref = doubtful.client_ref(is_last=doubtful.index == parts[-1].index)
    # A template's text is rendered by the provider: no body to match, only statuses count.
    if transport.has_sent_lookup and not message.template:
        try:
            found = _not_recorded(transport.find_sent(body=doubtful.text, since=attempted_at - _CLOCK_SKEW))
        except Unsupported:
            pass
        except ProviderError as exc:
            logger.warning("Lookup of the unknown send of message %s failed (%s); trying again.", message.pk, exc)
            return "waiting"
        else:
            if not found:
                return _resend(message, doubtful, reason=f"{transport.label} has no record of it")
            # Oldest first: the one created by our lost call.
            apply_status(update=dataclasses.replace(found[-1], client_ref=client_ref))
            logger.info("Unknown send of message %s found at %s.", message.pk, transport.label)
            message.refresh_from_db()
            if message.status != S.UNKNOWN:
                return "found"
            return _carry_on(message, list(message.parts.order_by("index")))
    if attempted_at > now - timedelta(seconds=settings.UNKNOWN_RESEND_AFTER_SECONDS):
        return "waiting"  # for a status callback
    grace = settings.UNKNOWN_RESEND_AFTER_SECONDS
    return _resend(message, doubtful, reason=f"no status from {transport.label} within {grace:g} s")


def _not_recorded(found: list[StatusUpdate]) -> list[StatusUpdate]:
    """The provider's messages not recorded as one of ours yet (an earlier identical text is)."""
    ids = [update.provider_message_id for update in found]
    known: set[str | None] = set(
        MessagePart.objects.filter(provider_message_id__in=ids).values_list("provider_message_id", flat=True)
    )
    known |= set(Message.objects.filter(provider_message_id__in=ids).values_list("provider_message_id", flat=True))
    return [update for update in found if update.provider_message_id not in known]


def _carry_on(message: Message, parts: list[MessagePart]) -> str:
    """Nothing is in doubt any more (a status or a lookup named the part): sent if every part
    is, else the rest is sent, without repeating a part."""
    unknown = Message.objects.filter(pk=message.pk, status=S.UNKNOWN)
    if parts and all(part.provider_message_id for part in parts):
        cleared = {} if message.resend_count else {"error_code": "", "error_title": ""}
        unknown.update(
            status=S.SENT,
            provider_message_id=message.provider_message_id or parts[-1].provider_message_id,
            updated_at=timezone.now(),
            **cleared,
        )
        notify.message_status_changed(message_id=message.pk)
        return "found"
    with transaction.atomic():
        if unknown.update(status=S.PENDING, claimed_by="", retry_at=None, updated_at=timezone.now()):
            enqueue_after_commit(SEND_OUTBOUND, message.pk)
    return "continued"


def _resend(message: Message, part: MessagePart, *, reason: str) -> str:
    """Take the part as not sent and send it again, once per message; after that, staff decide."""
    now = timezone.now()
    if message.resend_count:
        if (
            Message.objects.filter(pk=message.pk, status=S.UNKNOWN)
            .exclude(error_code=UNRESOLVED)
            .update(
                error_code=UNRESOLVED,
                error_title="Outcome unknown, also after one re-send: check with the customer",
                updated_at=now,
            )
        ):
            logger.error("Message %s not re-sent a second time (%s): left unknown for staff.", message.pk, reason)
            notify.message_status_changed(message_id=message.pk)
        return UNRESOLVED
    with transaction.atomic():
        # Both conditional: a status (or another resolver) that settled it meanwhile wins.
        cleared = MessagePart.objects.filter(pk=part.pk, attempted_at=part.attempted_at, provider_message_id="").update(
            attempted_at=None
        )
        moved = cleared and Message.objects.filter(pk=message.pk, status=S.UNKNOWN, resend_count=0).update(
            status=S.PENDING,
            resend_count=F("resend_count") + 1,
            claimed_by="",
            retry_at=None,
            error_code=RESENT,
            error_title=f"Re-sent once: {reason}"[:255],
            updated_at=now,
        )
        if not moved:
            transaction.set_rollback(True)
            return "waiting"
        AuditEntry.objects.create(
            action="message.resent",
            conversation_id=message.conversation_id,
            detail={"message_id": message.pk, "part": part.index, "reason": reason},
        )
        enqueue_after_commit(SEND_OUTBOUND, message.pk)
    logger.warning("Message %s re-sent once: %s.", message.pk, reason)
    notify.message_status_changed(message_id=message.pk)
    return RESENT
