"""What the model sees when it answers: bounded, free of provider references, in the chat's language.

Default mode: instructions + profile facts + a rolling summary of older turns + the last
CONTEXT_MAX_MESSAGES messages, all from our database, so the input stays flat however long the
conversation grows. OPENAI_USE_CONVERSATIONS mode: the OpenAI conversation holds the history and
only the customer's new messages are sent.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

from conversations import ai
from conversations.models import Channel, Conversation, Message, ModelUsage
from conversations.selectors.answering import list_turns_for_prompt
from conversations.selectors.prompt import (
    get_last_answered_message_id,
    list_customer_texts,
    list_other_channel_messages,
    list_turns_to_summarize,
)
from conversations.services.usage import record_model_usage
from conversations.turns import Turn

logger = logging.getLogger(__name__)

LANGUAGE_RULE = (
    "Always answer in the language the customer writes in, and keep that language for the whole "
    "conversation unless the customer switches."
)
WHATSAPP_STYLE = "You may use Markdown (bold, italics, lists); it is converted to WhatsApp formatting."
SMS_STYLE = "This is an SMS conversation: plain text only, no formatting, ideally under 300 characters."
_FIELD_LABELS = {"first_name": "first name", "last_name": "last name", "company": "company", "email": "email address"}

# Media URLs and ids of Meta and Twilio, and credentials, never reach the model or a summary.
_PROVIDER_REFS = re.compile(
    r"https?://(?:[\w-]+\.)*(?:fbsbx\.com|fbcdn\.net|whatsapp\.net|facebook\.com|twilio\.com|twiliocdn\.com)\S*"
    r"|\bwamid\.[\w=+/-]+"
    r"|\b(?:SM|MM|AC|ME|MG|XE|SK|CH)[0-9a-f]{32}\b"
    r"|\bsk-[\w-]{8,}"
    r"|\bBearer\s+\S+",
)


@dataclass(frozen=True)
class ModelRequest:
    instructions: str
    turns: list[Turn]
    openai_conversation_id: str = ""


def scrub_provider_refs(*, text: str) -> str:
    return _PROVIDER_REFS.sub("[removed]", text)


def build_model_request(*, inbound: Message, instructions: str) -> ModelRequest:
    """The bounded request answering `inbound` (its conversation and profile as loaded with it).
    May refresh the stored summary, create the OpenAI conversation, and record that missing
    details were asked for."""
    conversation = inbound.conversation
    sections = [
        instructions,
        LANGUAGE_RULE,
        SMS_STYLE if conversation.channel == Channel.TWILIO_SMS else WHATSAPP_STYLE,
    ]
    sections.append(_profile_facts(conversation))
    sections.append(_details_request(conversation, inbound))
    # Not into a web chat: its visitor is known by a browser cookie only, weaker than a number.
    if settings.CONTACT_CONTEXT_SUMMARY and conversation.channel != Channel.WEBCHAT:
        sections.append(_other_channels(conversation))
    if settings.OPENAI_USE_CONVERSATIONS and not ai.is_offline():
        conversation_id = _openai_conversation_id(conversation, inbound)
        return ModelRequest(_join(sections), _clean(_burst_turns(inbound)), conversation_id)
    turns = list_turns_for_prompt(message=inbound, limit=settings.CONTEXT_MAX_MESSAGES)
    # While the verbatim window is not full, no turn has fallen out of it to be summarised.
    is_window_full = len(turns) >= settings.CONTEXT_MAX_MESSAGES
    summary = _refreshed_summary(conversation, inbound) if is_window_full else conversation.summary
    if summary:
        sections.append(f"Summary of the earlier conversation:\n{summary}")
    return ModelRequest(_join(sections), _clean(turns))


def add_staff_message_to_model_context(*, message_id: int) -> bool:
    """In OPENAI_USE_CONVERSATIONS mode, append a staff message to the conversation's OpenAI
    conversation so the model knows what staff said; False when there is nothing to do.
    (The default mode reads staff messages from the database and needs no call.)"""
    if not settings.OPENAI_USE_CONVERSATIONS or ai.is_offline():
        return False
    message = Message.objects.select_related("conversation").get(pk=message_id)
    openai_id = message.conversation.openai_conversation_id
    if message.author != Message.Author.STAFF or not message.text.strip() or not openai_id:
        return False
    try:
        ai.add_conversation_items(
            conversation_id=openai_id, turns=[Turn(role="assistant", text=scrub_provider_refs(text=message.text))]
        )
    except ai.ModelUnavailable as exc:
        logger.warning("Staff message %s not added to the OpenAI conversation: %s", message.pk, exc)
        return False
    return True


def _join(sections: list[str]) -> str:
    return "\n\n".join(section for section in sections if section)


def _clean(turns: list[Turn]) -> list[Turn]:
    return [Turn(role=turn.role, text=scrub_provider_refs(text=turn.text)) for turn in turns]


def _profile_facts(conversation: Conversation) -> str:
    contact = conversation.profile.contact
    known = [f"- {label}: {getattr(contact, name)}" for name, label in _FIELD_LABELS.items() if getattr(contact, name)]
    if not known:
        return ""
    return "What we know about the customer:\n" + "\n".join(known)


# How much of the contact's other channels the model may see (CONTACT_CONTEXT_SUMMARY).
OTHER_CHANNEL_MESSAGES = 6
OTHER_CHANNEL_MESSAGE_CHARS = 200


def _other_channels(conversation: Conversation) -> str:
    """The same person's last few messages on their other channels, one line each: deterministic
    text from the database, so the bot knows what was said elsewhere without a model call."""
    messages = list_other_channel_messages(conversation=conversation, limit=OTHER_CHANNEL_MESSAGES)
    if not messages:
        return ""
    lines = []
    for message in messages:
        text = " ".join(scrub_provider_refs(text=message.text).split())
        if len(text) > OTHER_CHANNEL_MESSAGE_CHARS:
            text = text[: OTHER_CHANNEL_MESSAGE_CHARS - 1].rstrip() + "…"
        who = "customer" if message.author == Message.Author.CUSTOMER else "us"
        when = message.created_at.strftime("%Y-%m-%d %H:%M")
        lines.append(f"- {message.conversation.get_channel_display()}, {when} UTC, {who}: {text}")
    return (
        "The same customer recently wrote to us on other channels (oldest first; for context, mention "
        "it only if it helps):\n" + "\n".join(lines)
    )


def _details_request(conversation: Conversation, inbound: Message) -> str:
    """Ask for missing details at most once every PROFILE_ASK_EVERY_TURNS customer messages,
    never once the profile is complete or the customer declined."""
    contact = conversation.profile.contact
    missing = contact.missing_fields
    if not missing or contact.details_declined_at is not None:
        return ""
    if not _record_details_asked(inbound):
        return ""
    labels = ", ".join(_FIELD_LABELS[name] for name in missing)
    return (
        f"We do not know the customer's {labels} yet. If it fits naturally, ask for them in this "
        "reply, briefly and politely; answer the customer's question first. If they decline, accept it."
    )


def _record_details_asked(inbound: Message) -> bool:
    """One statement decides and records it: the turn is this message's customer-message count,
    and a concurrent reply in the same conversation cannot ask a second time. SQL: the ORM took
    ten times longer to build it than the database to run it (selectors/answering.py)."""
    turn = (
        "(SELECT COUNT(*) FROM conversations_message counted WHERE counted.conversation_id = %s"
        " AND counted.author = %s AND counted.id <= %s)"
    )
    counted: list[Any] = [inbound.conversation_id, Message.Author.CUSTOMER, inbound.pk]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE conversations_conversation SET details_asked_at_turn = {turn} WHERE id = %s"  # noqa: S608 (ours)
            f" AND (details_asked_at_turn IS NULL OR details_asked_at_turn <= {turn} - %s)",
            [*counted, inbound.conversation_id, *counted, settings.PROFILE_ASK_EVERY_TURNS],
        )
        return cursor.rowcount == 1


def _refreshed_summary(conversation: Conversation, inbound: Message) -> str:
    """The stored summary, first extended with the turns that fell out of the verbatim window
    once CONTEXT_SUMMARY_BATCH of them have piled up."""
    through_id, pending = list_turns_to_summarize(
        message=inbound, window=settings.CONTEXT_MAX_MESSAGES, after_id=conversation.summary_through_message_id
    )
    if len(pending) < settings.CONTEXT_SUMMARY_BATCH or ai.is_offline():
        return conversation.summary
    try:
        answer = ai.summarize_turns(previous_summary=conversation.summary, turns=_clean(pending))
    except Exception as exc:  # the summary is an economy: no failure of it may cost the reply
        logger.warning("Summary of conversation %s failed (%r); the older summary stays.", conversation.pk, exc)
        return conversation.summary
    record_model_usage(message=inbound, purpose=ModelUsage.Purpose.SUMMARY, answer=answer)
    summary = scrub_provider_refs(text=answer.text)
    # Conditional: a concurrent worker that already moved the summary on wins.
    Conversation.objects.filter(
        pk=conversation.pk, summary_through_message_id=conversation.summary_through_message_id
    ).update(summary=summary, summary_through_message_id=through_id)
    return summary


def _burst_turns(inbound: Message) -> list[Turn]:
    """The customer's messages not yet answered, up to `inbound` (the OpenAI conversation has the rest)."""
    texts = list_customer_texts(
        message=inbound, after_id=get_last_answered_message_id(conversation_id=inbound.conversation_id)
    )
    return [Turn(role="user", text=text) for text in texts]


def _openai_conversation_id(conversation: Conversation, inbound: Message) -> str:
    if conversation.openai_conversation_id:
        return conversation.openai_conversation_id
    # Seeded with what was said before (e.g. the mode was switched on mid-conversation).
    burst = _burst_turns(inbound)
    history = list_turns_for_prompt(message=inbound, limit=settings.CONTEXT_MAX_MESSAGES)
    earlier = history[: max(len(history) - len(burst), 0)]
    created = ai.create_conversation(turns=_clean(earlier[-20:]))
    Conversation.objects.filter(pk=conversation.pk, openai_conversation_id="").update(openai_conversation_id=created)
    conversation.refresh_from_db(fields=["openai_conversation_id"])
    return conversation.openai_conversation_id
