"""A customer asking for a person: by keyword before the model is asked, or by the model itself
(its `request_human` tool call). The conversation is flagged for staff and the customer told."""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import replace
from functools import cache

from django.conf import settings
from django.db import transaction

from conversations import events, notify
from conversations.ai import ModelReply
from conversations.models import AuditEntry, Conversation, Message
from telemetry import metrics

logger = logging.getLogger(__name__)

HUMAN_COMING_REPLY = "I've asked a colleague to join: someone from our team will answer you here shortly."


@cache
def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    # "how much per person?", "2 persone": a keyword after a number or a distributive word is a
    # quantity, not a request.
    quantity = "".join(rf"(?<!\b{word} )" for word in ("per", "each", "every", "por", "pro", "par"))
    digits = "".join(rf"(?<!{digit} )" for digit in "0123456789")
    return re.compile(quantity + digits + r"\b(?:" + "|".join(map(re.escape, keywords)) + r")\b", re.IGNORECASE)


# A keyword decides only in a short message ("operatore, per favore"); in a longer one it may be
# part of a question ("how much per persona?"), which the model's request_human tool judges.
_KEYWORD_MESSAGE_MAX_WORDS = 8

# Whole phrases that ask for a person in the supported languages (en, it, es, fr, de, pt, nl),
# matched on accent-free lower case at any length: "can I talk to a real person about my order?".
_PERSON = {
    "en": r"(?:a |an |the |some |your |one of your )?(?:real |live |actual )?"
    r"(?:person|human|human being|someone|somebody|agent|operator|representative|rep|staff|colleague)",
    "it": r"(?:un |una |uno |un'|l')?(?:operatore|operatrice|persona|umano|qualcuno|addetto|addetta|"
    r"assistente|collega|essere umano)",
    "es": r"(?:un |una |el |la |algun |alguna )?(?:persona|humano|agente|operador|operadora|asesor|asesora|"
    r"alguien|ser humano)",
    "fr": r"(?:quelqu'un|quelqu un|(?:un |une )(?:vrai |vraie )?(?:personne|humain|etre humain|conseiller|"
    r"conseillere|agent|operateur|operatrice))",
    "de": r"(?:jemandem|(?:einem|einer) (?:echten |richtigen )?(?:menschen|mitarbeiter|mitarbeiterin|berater|"
    r"beraterin|person))",
    "pt": r"(?:um |uma |o |a |alguma )?(?:pessoa|humano|atendente|agente|operador|operadora|alguem|ser humano)",
    "nl": r"(?:iemand|(?:een |de )(?:echte )?(?:medewerker|medewerkster|mens|persoon))",
}
_PHRASES = (
    rf"\b(?:talk|speak|chat|connect me|put me through|transfer me)\s+(?:to|with)\s+{_PERSON['en']}\b",
    r"\b(?:real|live|actual) (?:person|human|agent)\b",
    r"\bhuman (?:being|agent|operator|support)\b",
    rf"\bparlare\s+(?:con\s+)?{_PERSON['it']}\b",
    r"\bpersona (?:reale|vera)\b",
    rf"\bhablar\s+(?:con\s+)?{_PERSON['es']}\b",
    r"\bpersona real\b",
    rf"\bparler\s+(?:a|avec)\s+{_PERSON['fr']}",
    rf"\bmit {_PERSON['de']}\s+(?:\w+\s+){{0,2}}(?:sprechen|reden)\b",
    r"\b(?:echten|richtigen) (?:menschen|mitarbeiter|person)\b",
    rf"\bfalar\s+(?:com\s+)?{_PERSON['pt']}\b",
    r"\bpessoa real\b",
    rf"\b(?:spreken|praten)\s+met\s+{_PERSON['nl']}\b",
    rf"\bmet {_PERSON['nl']}\s+(?:\w+\s+){{0,2}}(?:spreken|praten)\b",
    r"\becht(?:e)? (?:mens|persoon|medewerker)\b",
)
_PHRASE_PATTERN = re.compile("|".join(_PHRASES))


def _plain(text: str) -> str:
    """Lower case without accents or curly apostrophes: "Qualcuno può…" matches as typed."""
    decomposed = unicodedata.normalize("NFKD", text.replace("\u2019", "'").lower())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def is_request_for_human(*, text: str) -> bool:
    """True when the customer asks for a person: a common phrase in a supported language anywhere
    in the message (the simulator's "Talk to a person" button sends one), or a keyword from
    HUMAN_REQUEST_KEYWORDS in a short message. Anything subtler is left to the model's tool."""
    if not text:
        return False
    plain = _plain(text)
    if _PHRASE_PATTERN.search(plain):
        return True
    keywords = tuple(settings.HUMAN_REQUEST_KEYWORDS)
    if not keywords or len(text.split()) > _KEYWORD_MESSAGE_MAX_WORDS:
        return False
    return bool(_keyword_pattern(tuple(_plain(word) for word in keywords)).search(plain))


def note_request_for_human(*, inbound: Message, answer: ModelReply) -> ModelReply:
    """Flag the conversation when the answer says the customer wants a person; make sure the
    customer hears that someone will come."""
    if not answer.wants_human:
        return answer
    if flag_needs_human(conversation_id=inbound.conversation_id, message_id=inbound.pk):
        metrics.count_human_request(source="model" if answer.model else "keyword")
    return answer if answer.text else replace(answer, text=HUMAN_COMING_REPLY)


def flag_needs_human(*, conversation_id: int, message_id: int) -> bool:
    """Set needs_human on a bot-mode conversation (audited); False if already set or taken over."""
    with transaction.atomic():
        changed = Conversation.objects.filter(pk=conversation_id, mode=Conversation.Mode.BOT, needs_human=False).update(
            needs_human=True
        )
        if changed:
            AuditEntry.objects.create(
                action="conversation.needs_human", conversation_id=conversation_id, detail={"message_id": message_id}
            )
            notify.conversation_changed(conversation_id=conversation_id)
            events.emit(events.NEEDS_HUMAN, conversation_id=conversation_id, message_id=message_id)
    if changed:
        logger.info("Conversation %s flagged: the customer asked for a person.", conversation_id)
    return bool(changed)
