"""Slash commands: answered from the database, never by the model (nor seen by extraction)."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from conversations import events
from conversations.ai import ModelReply
from conversations.models import Conversation, Message
from conversations.selectors.answering import list_turns_for_prompt

logger = logging.getLogger(__name__)

HISTORY_TURNS = 10
HISTORY_LINE_CHARS = 80

HELP_TEXT = (
    "**Commands**\n"
    "- /reset: start a fresh conversation (earlier messages are kept on record, I stop using them)\n"
    "- /history: our recent messages\n"
    "- /info: what we store about you\n"
    "- /help: this list"
)
RESET_TEXT = "Done: this is a fresh conversation. I won't use our earlier messages from now on."
EMPTY_HISTORY_TEXT = "No messages yet in this conversation."
_FIELDS = (("first_name", "First name"), ("last_name", "Last name"), ("company", "Company"), ("email", "Email"))


def parse_command(*, text: str) -> str | None:
    """The command a message is (unknown ones are /help), or None for an ordinary message."""
    stripped = text.strip()
    if not stripped.startswith("/") or len(stripped) < 2:
        return None
    word = stripped.split()[0].lower()
    return word if word in _HANDLERS else "/help"


def run_command(*, inbound: Message) -> ModelReply | None:
    """The answer to a command message (a /reset also closes the conversation), or None when
    `inbound` is no command or staff have the conversation."""
    command = parse_command(text=inbound.text) if inbound.kind == Message.Kind.TEXT else None
    if command is None or inbound.conversation.mode != Conversation.Mode.BOT:
        return None
    logger.info("Command %s in conversation %s.", command, inbound.conversation_id)
    return ModelReply(text=_HANDLERS[command](inbound), model="")


def _reset(inbound: Message) -> str:
    conversation = inbound.conversation
    with transaction.atomic():
        closed = Conversation.objects.filter(pk=conversation.pk, status=Conversation.Status.OPEN).update(
            status=Conversation.Status.CLOSED
        )
        if closed:
            events.emit(events.CONVERSATION_RESOLVED, conversation_id=conversation.pk, reason="reset")
            try:
                with transaction.atomic():
                    Conversation.objects.create(
                        profile_id=conversation.profile_id,
                        channel=conversation.channel,
                        business_address=conversation.business_address,
                    )
            except IntegrityError:
                pass  # a message that arrived meanwhile opened it already
    return RESET_TEXT


def _history(inbound: Message) -> str:
    turns = list_turns_for_prompt(message=inbound, limit=HISTORY_TURNS)
    if not turns:
        return EMPTY_HISTORY_TEXT
    lines = []
    for turn in turns:
        if turn.role == "developer":  # internal notes written for the model, not for the customer
            continue
        text = " ".join(turn.text.split())
        if len(text) > HISTORY_LINE_CHARS:
            text = text[: HISTORY_LINE_CHARS - 1].rstrip() + "…"
        lines.append(f"{'You' if turn.role == 'user' else 'Us'}: {text}")
    return "\n".join(lines)


def _info(inbound: Message) -> str:
    profile = inbound.conversation.profile
    contact = profile.contact
    facts = [f"- {label}: {getattr(contact, name)}" for name, label in _FIELDS if getattr(contact, name)]
    if profile.phone_number:
        facts.append(f"- Phone: {profile.phone_number}")
    paragraphs = ["What we store about you:\n\n" + "\n".join(facts) if facts else "We store no details about you."]
    if contact.missing_fields:
        labels = ", ".join(label.lower() for name, label in _FIELDS if name in contact.missing_fields)
        paragraphs.append(f"Not known: {labels}.")
    paragraphs.append("Type /reset to start a fresh conversation.")
    return "\n\n".join(paragraphs)


def _help(inbound: Message) -> str:
    return HELP_TEXT


_HANDLERS = {"/reset": _reset, "/history": _history, "/info": _info, "/help": _help}
