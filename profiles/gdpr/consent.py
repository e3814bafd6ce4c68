"""Opt-out of bot messages: STOP (and the like) silences the bot for that person, START resumes.

A keyword counts only as the whole message (case, accents and trailing punctuation ignored):
"stop" opts out, "please stop the delivery" is an ordinary message for the model.
"""

from __future__ import annotations

import logging
import string
import unicodedata
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from conversations.models import AuditEntry, Message
from profiles.models import ClientProfile

logger = logging.getLogger(__name__)

# Carrier and WhatsApp-business conventions in the languages customers write in; each maps to the
# language of its confirmation.
OPT_OUT_KEYWORDS = {
    "stop": "en",
    "stopall": "en",
    "unsubscribe": "en",
    "cancel": "en",
    "end": "en",
    "quit": "en",
    "optout": "en",
    "opt out": "en",
    "revoke": "en",
    "baja": "es",
    "darse de baja": "es",
    "parar": "es",
    "cancelar": "es",
    "arret": "fr",
    "arreter": "fr",
    "desabonner": "fr",
    "desinscrire": "fr",
    "stopp": "de",
    "abmelden": "de",
    "abbestellen": "de",
    "kundigen": "de",
    "basta": "it",
    "disiscriviti": "it",
    "cancelar inscricao": "pt",
    "sair": "pt",
}
OPT_IN_KEYWORDS = {"start": "en", "unstop": "en", "resume": "en", "alta": "es", "demarrer": "fr"}

OPT_OUT_CONFIRMATIONS = {
    "en": "You will receive no more automatic messages from us. Reply START to resume.",
    "es": "No recibirás más mensajes automáticos nuestros. Responde START para volver a recibirlos.",
    "fr": "Vous ne recevrez plus de messages automatiques de notre part. Répondez START pour reprendre.",
    "de": "Sie erhalten keine automatischen Nachrichten mehr von uns. Antworten Sie START, um fortzufahren.",
    "it": "Non riceverai più messaggi automatici da noi. Rispondi START per riprendere.",
    "pt": "Você não receberá mais mensagens automáticas nossas. Responda START para voltar a recebê-las.",
}
OPT_IN_CONFIRMATIONS = {
    "en": "Welcome back! You will receive our automatic messages again. Reply STOP to stop them.",
    "es": "¡Bienvenido de nuevo! Volverás a recibir nuestros mensajes automáticos. Responde STOP para pararlos.",
    "fr": "Bon retour ! Vous recevrez à nouveau nos messages automatiques. Répondez STOP pour les arrêter.",
}


@dataclass(frozen=True)
class ConsentOutcome:
    """What the reply pipeline does with a customer message after the consent check."""

    is_silent: bool = False  # answer nothing (the person opted out)
    reply: str = ""  # a fixed confirmation instead of a model answer


CARRY_ON = ConsentOutcome()


def normalize_keyword(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.strip().strip(string.punctuation + "¡¿ ").split())


def opt_out_language(text: str) -> str | None:
    return OPT_OUT_KEYWORDS.get(normalize_keyword(text))


def apply_consent_keywords(*, message: Message) -> ConsentOutcome:
    """Record an opt-out or opt-in the customer message asks for, and say how the bot answers:
    one confirmation on STOP, then silence for that person until START."""
    profile = message.conversation.profile
    keyword = normalize_keyword(message.text) if message.kind == Message.Kind.TEXT else ""
    if keyword in OPT_OUT_KEYWORDS:
        changed = _set_consent(profile, opted_out=True, keyword=keyword)
        if not changed:
            return ConsentOutcome(is_silent=True)  # one confirmation only
        language = OPT_OUT_KEYWORDS[keyword]
        return ConsentOutcome(reply=OPT_OUT_CONFIRMATIONS.get(language, OPT_OUT_CONFIRMATIONS["en"]))
    if keyword in OPT_IN_KEYWORDS and _set_consent(profile, opted_out=False, keyword=keyword):
        language = OPT_IN_KEYWORDS[keyword]
        return ConsentOutcome(reply=OPT_IN_CONFIRMATIONS.get(language, OPT_IN_CONFIRMATIONS["en"]))
    if ClientProfile.objects.filter(pk=profile.pk, opted_out_at__isnull=False).exists():
        return ConsentOutcome(is_silent=True)
    return CARRY_ON


def is_blocked_by_opt_out(*, message: Message) -> bool:
    """True for a bot message to a person who opted out, except the confirmation of that opt-out."""
    if message.author != Message.Author.BOT:
        return False
    profile = ClientProfile.objects.filter(pk=message.conversation.profile_id).only("opted_out_at").first()
    if profile is None or profile.opted_out_at is None:
        return False
    trigger = message.in_reply_to
    return not (trigger is not None and opt_out_language(trigger.text) is not None)


def _set_consent(profile: ClientProfile, *, opted_out: bool, keyword: str) -> bool:
    """Flip the profile's consent; False when it was already so (a repeated STOP or START)."""
    now = timezone.now()
    with transaction.atomic():
        if opted_out:
            changed = ClientProfile.objects.filter(pk=profile.pk, opted_out_at__isnull=True).update(
                opted_out_at=now, updated_at=now
            )
        else:
            changed = ClientProfile.objects.filter(pk=profile.pk, opted_out_at__isnull=False).update(
                opted_out_at=None, opted_in_at=now, updated_at=now
            )
        if changed:
            AuditEntry.objects.create(
                action="consent.opt_out" if opted_out else "consent.opt_in",
                profile=profile,
                detail={"keyword": keyword, "at": now.isoformat()},
            )
    if changed:
        logger.info("Profile %s %s bot messages.", profile.pk, "opted out of" if opted_out else "opted back in to")
    return bool(changed)
