"""Consent in a conversation: a STOP-like message silences the bot for that person on every
channel, START resumes.

The keywords and their confirmations are the person's (profiles/consent.py); this module records
the choice on the contact (so a STOP on WhatsApp also stops SMS replies), audits it, and tells
the reply and send paths what to do. No per-channel opt-out is kept (README, "Opt-out").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from conversations.models import AuditEntry, Message
from profiles.consent import (
    OPT_IN_CONFIRMATIONS,
    OPT_IN_KEYWORDS,
    OPT_OUT_CONFIRMATIONS,
    OPT_OUT_KEYWORDS,
    normalize_keyword,
    opt_out_language,
)
from profiles.models import Contact

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsentOutcome:
    """What the reply pipeline does with a customer message after the consent check."""

    is_silent: bool = False  # answer nothing (the person opted out)
    reply: str = ""  # a fixed confirmation instead of a model answer


CARRY_ON = ConsentOutcome()


def apply_consent_keywords(*, message: Message) -> ConsentOutcome:
    """Record an opt-out or opt-in the customer message asks for, and say how the bot answers:
    one confirmation on STOP, then silence for that person until START."""
    contact = message.conversation.profile.contact
    keyword = normalize_keyword(message.text) if message.kind == Message.Kind.TEXT else ""
    if keyword in OPT_OUT_KEYWORDS:
        changed = _set_consent(contact, message, opted_out=True, keyword=keyword)
        if not changed:
            return ConsentOutcome(is_silent=True)  # one confirmation only
        language = OPT_OUT_KEYWORDS[keyword]
        return ConsentOutcome(reply=OPT_OUT_CONFIRMATIONS.get(language, OPT_OUT_CONFIRMATIONS["en"]))
    if keyword in OPT_IN_KEYWORDS and _set_consent(contact, message, opted_out=False, keyword=keyword):
        language = OPT_IN_KEYWORDS[keyword]
        return ConsentOutcome(reply=OPT_IN_CONFIRMATIONS.get(language, OPT_IN_CONFIRMATIONS["en"]))
    if contact.opted_out_at is not None:  # as loaded with the message, a moment ago
        return ConsentOutcome(is_silent=True)
    return CARRY_ON


def is_blocked_by_opt_out(*, message: Message) -> bool:
    """True for a bot message to a person who opted out, except the confirmation of that opt-out."""
    if message.author != Message.Author.BOT:
        return False
    if message.conversation.profile.contact.opted_out_at is None:  # the send loads them with the message
        return False
    trigger = message.in_reply_to
    return not (trigger is not None and opt_out_language(trigger.text) is not None)


def _set_consent(contact: Contact, message: Message, *, opted_out: bool, keyword: str) -> bool:
    """Flip the contact's consent; False when it was already so (a repeated STOP or START)."""
    now = timezone.now()
    with transaction.atomic():
        if opted_out:
            changed = Contact.objects.filter(pk=contact.pk, opted_out_at__isnull=True).update(
                opted_out_at=now, updated_at=now
            )
        else:
            changed = Contact.objects.filter(pk=contact.pk, opted_out_at__isnull=False).update(
                opted_out_at=None, opted_in_at=now, updated_at=now
            )
        if changed:
            if opted_out:  # the contact in hand says so too (the reply's send reads it)
                contact.opted_out_at = now
            else:
                contact.opted_out_at, contact.opted_in_at = None, now
            AuditEntry.objects.create(
                action="consent.opt_out" if opted_out else "consent.opt_in",
                contact=contact,
                profile_id=message.conversation.profile_id,
                detail={"keyword": keyword, "at": now.isoformat(), "channel": message.conversation.channel},
            )
    if changed:
        logger.info("Contact %s %s bot messages.", contact.pk, "opted out of" if opted_out else "opted back in to")
    return bool(changed)
