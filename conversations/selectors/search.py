"""The live inbox's search: contacts (name, number, email) and message text.

Message text is searched with PostgreSQL full-text search on the `message_text_search_idx` GIN
index (migration 0008: `to_tsvector('simple', text)`, no stemming, because customers write in any
language; whole words: with prefixes (`word:*`) the planner cannot estimate how many rows match
and walked the whole table for a rare code, 4 s over a million messages). SQLite has no such
index: each word must appear in the text (LIKE), which is a scan, good enough for development.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection
from django.db.models import BooleanField, F, Q
from django.db.models.expressions import RawSQL

from conversations.models import Conversation, Message

SNIPPET_CHARS = 160
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 8


@dataclass(frozen=True)
class MessageHit:
    message_id: int
    conversation_id: int
    contact_name: str
    direction: str
    author: str
    snippet: str
    created_at: str


def search_words(query: str) -> list[str]:
    """The words of a query, as searched (lower case, at most MAX_WORDS)."""
    return [word.lower() for word in _WORD.findall(query)][:MAX_WORDS]


def search_conversations(*, query: str, limit: int = 20) -> list[int]:
    """Ids of the most recently active conversations whose contact (the person) matches every word
    of `query` in the name, company, email or number, or the channel identity's name or number."""
    words = search_words(query)
    if not words:
        return []
    if connection.vendor == "postgresql":
        return _search_conversations_on_postgresql(words, limit)
    condition = Q()
    for word in words:
        digits = word.lstrip("+")
        condition &= (
            Q(profile__display_name__icontains=word)
            | Q(profile__contact__first_name__icontains=word)
            | Q(profile__contact__last_name__icontains=word)
            | Q(profile__contact__email__icontains=word)
            | Q(profile__contact__company__icontains=word)
            | (
                Q(profile__contact__phone_number__contains=digits) | Q(profile__phone_number__contains=digits)
                if digits.isdigit()
                else Q(pk__in=[])
            )
        )
    rows = Conversation.objects.filter(condition).order_by("-updated_at", "-id").values_list("pk", flat=True)
    return list(rows[:limit])


# The trigram-indexed texts of profiles' migration 0001, one per table ({t}: a table alias): a word (\w+) never
# spans two fields, and a number (E.164) holds only a word of digits, so a word in a text is a word
# in one of its fields.
_IDENTITY_TEXT = "lower({t}display_name || ' ' || {t}phone_number)"
_CONTACT_TEXT = (
    "lower({t}first_name || ' ' || {t}last_name || ' ' || {t}email || ' ' || {t}company"
    " || ' ' || coalesce({t}phone_number, ''))"
)
# The identities whose text or whose contact's text holds a word (one may be listed twice); the
# contacts' scan stops at its LIMIT (a join would first hash every contact holding a common word).
_MATCHING = (
    f"SELECT id FROM profiles_clientprofile WHERE {_IDENTITY_TEXT.format(t='')} LIKE %s"  # noqa: S608 (bound)
    " UNION ALL SELECT identity.id FROM profiles_clientprofile identity JOIN"
    f" (SELECT id FROM profiles_contact WHERE {_CONTACT_TEXT.format(t='')} LIKE %s LIMIT %s) contact"
    " ON identity.contact_id = contact.id LIMIT %s"
)
# A conversation's identity or contact matching a word, checked on the row.
_ROW_MATCHES = (
    "EXISTS (SELECT 1 FROM profiles_clientprofile identity JOIN profiles_contact contact"  # noqa: S608 (bound)
    " ON contact.id = identity.contact_id WHERE identity.id = conversations_conversation.profile_id"
    f" AND ({_IDENTITY_TEXT.format(t='identity.')} LIKE %s OR {_CONTACT_TEXT.format(t='contact.')} LIKE %s))"
)
# More identities than this hold a common word: it is checked on the rows walked in
# the list's order, most of which hold it, instead of as a set (up to a whole table's ids). A word
# held by many people but none of the recent ones walks far: a few hundred ms over 100,000.
COMMON_WORD_MATCHES = 1000


def _search_conversations_on_postgresql(words: list[str], limit: int) -> list[int]:
    """Each rare word narrows the search to the identities holding it, in their text or their
    contact's (found through the trigram indexes); common words are checked on the rows, newest
    first, until `limit` are found."""
    conversations = Conversation.objects.all()
    for word in words:
        pattern = "%" + word.replace("_", "\\_") + "%"  # \w+: `_` is the only LIKE wildcard it holds
        with connection.cursor() as cursor:
            cursor.execute(_MATCHING, [pattern, pattern, COMMON_WORD_MATCHES + 1, COMMON_WORD_MATCHES + 1])
            identities = [identity_id for (identity_id,) in cursor.fetchall()]
        if len(identities) > COMMON_WORD_MATCHES:
            conversations = conversations.filter(RawSQL(_ROW_MATCHES, [pattern, pattern], output_field=BooleanField()))  # noqa: S611 (bound)
        else:
            conversations = conversations.filter(profile_id__in=identities)
    return list(conversations.order_by("-updated_at", "-id").values_list("pk", flat=True)[:limit])


def search_messages(*, query: str, limit: int = 30) -> list[MessageHit]:
    """The newest messages (customer, bot and staff words, and private notes) holding every word
    of `query`, with a snippet around the first match."""
    words = search_words(query)
    if not words:
        return []
    messages = Message.objects.exclude(author=Message.Author.NOTE)
    if connection.vendor == "postgresql":
        tsquery = " & ".join(words)  # \w+ only: nothing to escape
        # The exact expression of the index, so the planner uses it.
        matches = "to_tsvector('simple', conversations_message.text) @@ to_tsquery('simple', %s)"
        messages = messages.filter(RawSQL(matches, [tsquery], output_field=BooleanField()))  # noqa: S611 (bound)
    else:
        for word in words:
            messages = messages.filter(text__icontains=word)
    if connection.vendor == "postgresql" and len(words) > 1:
        # The planner takes words as independent and, expecting many rows holding them all, walks
        # the primary key from the newest message: 4.5 s over a million messages for two common
        # words never written together. Ordered by an expression, it intersects the index instead.
        messages = messages.annotate(newest=F("id") + 0).order_by("-newest")
    else:
        messages = messages.order_by("-id")
    rows = messages.values_list(
        "pk",
        "conversation_id",
        "direction",
        "author",
        "text",
        "created_at",
        "conversation__profile__display_name",
        "conversation__profile__contact__first_name",
        "conversation__profile__contact__last_name",
    )[:limit]
    return [
        MessageHit(
            message_id=pk,
            conversation_id=conversation_id,
            contact_name=" ".join(part for part in (first, last) if part) or display or "Customer",
            direction=direction,
            author=author,
            snippet=_snippet(text, words),
            created_at=created_at.isoformat(),
        )
        for pk, conversation_id, direction, author, text, created_at, display, first, last in rows
    ]


def _snippet(text: str, words: list[str]) -> str:
    lowered = text.lower()
    positions = [position for word in words if (position := lowered.find(word)) >= 0]
    start = max(0, min(positions, default=0) - SNIPPET_CHARS // 3)
    snippet = text[start : start + SNIPPET_CHARS]
    return ("…" if start else "") + snippet + ("…" if start + SNIPPET_CHARS < len(text) else "")
