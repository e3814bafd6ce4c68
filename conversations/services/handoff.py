"""A customer asking for a person: by keyword before the model is asked, or by the model itself
(its `request_human` tool call). The conversation is flagged for staff and the customer told."""

from __future__ import annotations

import logging
import re
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
    return re.compile(r"\b(?:" + "|".join(map(re.escape, keywords)) + r")\b", re.IGNORECASE)


# A keyword decides only in a short message ("operatore, per favore"); in a longer one it may be
# part of a question ("how much per persona?"), which the model's request_human tool judges.
_KEYWORD_MESSAGE_MAX_WORDS = 8


def is_request_for_human(*, text: str) -> bool:
    keywords = tuple(settings.HUMAN_REQUEST_KEYWORDS)
    if not keywords or not text or len(text.split()) > _KEYWORD_MESSAGE_MAX_WORDS:
        return False
    return bool(_keyword_pattern(keywords).search(text))


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
