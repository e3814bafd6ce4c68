"""Reads of the reply pipeline: what the model sees, what is answered, what it cost.

Staff pages read through selectors/inbox.py, the web chat through selectors/webchat.py, media
through media/selectors.py; services and views query no model directly.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import BigIntegerField, Max, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from conversations.models import Conversation, Message, ModelUsage
from conversations.turns import Turn

# Staff and bot both speak for the business; internal notes (takeover, hand-back) instruct the model.
_ROLES = {Message.Author.CUSTOMER: "user", Message.Author.NOTE: "developer"}


def prompt_role(author: str) -> str:
    """The role a message of `author` plays in the model's input."""
    return _ROLES.get(author, "assistant")


def list_turns_to_summarize(*, message: Message, window: int, after_id: int | None) -> tuple[int | None, list[Turn]]:
    """The turns older than the last `window` ones (as list_turns_for_prompt counts them) and
    newer than `after_id`, oldest first, with the id of the newest of them."""
    eligible = _prompt_messages(message)
    window_ids = list(eligible.order_by("-id").values_list("id", flat=True)[:window])
    if len(window_ids) < window:
        return after_id, []
    older = (
        eligible.filter(id__lt=window_ids[-1], id__gt=after_id or 0).order_by("id").values_list("id", "author", "text")
    )
    rows = list(older)
    turns = [Turn(role=prompt_role(author), text=text) for _, author, text in rows]
    return (rows[-1][0] if rows else after_id), turns


def list_other_channel_messages(*, conversation: Conversation, limit: int) -> list[Message]:
    """The contact's last `limit` messages with words in them from its other conversations (any
    channel or identity), oldest first, with their conversations."""
    others = (
        Message.objects.filter(conversation__profile__contact_id=conversation.profile.contact_id)
        .exclude(conversation_id=conversation.pk)
        .exclude(text="")
        # Notes for the model of another conversation, and staff's private notes for colleagues.
        .exclude(author__in=[Message.Author.NOTE, Message.Author.PRIVATE_NOTE])
        .exclude(status=Message.Status.FAILED)
        .exclude(text__startswith="/")
        .exclude(in_reply_to__text__startswith="/")
        .select_related("conversation")
        .order_by("-id")
    )
    return list(reversed(others[:limit]))


def get_conversation_token_usage(*, conversation_id: int) -> dict[str, int]:
    """Tokens spent on one conversation: its replies plus extraction, summaries and discarded replies."""
    replies = Message.objects.filter(conversation_id=conversation_id).aggregate(
        input=Sum("input_tokens", default=0), output=Sum("output_tokens", default=0)
    )
    other = ModelUsage.objects.filter(conversation_id=conversation_id).aggregate(
        input=Sum("input_tokens", default=0), output=Sum("output_tokens", default=0)
    )
    usage = {"input_tokens": replies["input"] + other["input"], "output_tokens": replies["output"] + other["output"]}
    usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
    return usage


def get_last_answered_message_id(*, conversation_id: int) -> int:
    """The newest customer message the bot answered (0 if none): later ones await a reply."""
    return _bot_messages(conversation_id).aggregate(last=Max("in_reply_to_id"))["last"] or 0


def list_customer_texts(*, message: Message, limit: int | None = None, after_id: int = 0) -> list[str]:
    """The customer's own words up to and including `message` (after `after_id`), oldest first;
    the last `limit` of them when given. Commands are left out."""
    texts = (
        _customer_messages(message.conversation_id)
        .filter(id__gt=after_id, id__lte=message.id)
        .exclude(text="")
        .order_by("-id")
        .values_list("text", flat=True)
    )
    return list(reversed(texts[:limit] if limit is not None else texts))


def list_newer_customer_messages(*, message: Message) -> QuerySet[Message]:
    """The customer's messages after `message` (commands aside): a burst's newer ones."""
    return _customer_messages(message.conversation_id).filter(id__gt=message.id)


def has_newer_customer_message(*, message: Message) -> bool:
    return list_newer_customer_messages(message=message).exists()


def get_first_unanswered_message_time(*, conversation_id: int) -> datetime | None:
    """When the oldest customer message the bot has not answered yet arrived (one statement)."""
    answered = _bot_messages(conversation_id).order_by().values("conversation_id").annotate(last=Max("in_reply_to_id"))
    return (
        _customer_messages(conversation_id)
        .filter(id__gt=Coalesce(Subquery(answered.values("last"), output_field=BigIntegerField()), 0))
        .order_by("id")
        .values_list("created_at", flat=True)
        .first()
    )


def _bot_messages(conversation_id: int) -> QuerySet[Message]:
    return Message.objects.filter(conversation_id=conversation_id, author=Message.Author.BOT)


def _customer_messages(conversation_id: int) -> QuerySet[Message]:
    return Message.objects.filter(conversation_id=conversation_id, author=Message.Author.CUSTOMER).exclude(
        text__startswith="/"
    )


def _prompt_messages(message: Message) -> QuerySet[Message]:
    """Messages with words in them, up to and including `message` (written as SQL for the
    prompt's window: selectors/answering.py's list_turns_for_prompt)."""
    return (
        Message.objects.filter(conversation_id=message.conversation_id, id__lte=message.id)
        .exclude(text="")
        # Staff's private notes are for colleagues only.
        .exclude(author=Message.Author.PRIVATE_NOTE)
        .exclude(status=Message.Status.FAILED)
        # Commands and their answers are between the customer and the machinery, not the chat.
        .exclude(text__startswith="/")
        .exclude(in_reply_to__text__startswith="/")
    )
