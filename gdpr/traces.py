"""Where a subject turns up outside their own rows: raw webhook captures and the admin history.

Captures are raw request bodies (JSON or form-encoded), so they are found by the identifiers they
carry; the admin history (django_admin_log) names objects by content type and id, and repeats
their `str()` (a person's name) in `object_repr` and field names in `change_message`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import BooleanField, F, Func, Model, Q, QuerySet, TextField

from conversations.models import Attachment, AuditEntry, CapturedWebhook, Conversation, Message
from gdpr.models import ErasedIdentifier
from gdpr.subjects import Subject, hash_identifier
from profiles.models import ClientProfile, Contact

_WHATSAPP_PREFIX = "whatsapp:"
_PHONE = re.compile(r"^\+?\d{6,15}$")
# Values longer than any identifier are message texts, not identifiers: not hashed.
_MAX_IDENTIFIER_CHARS = 200
_HASH_KIND = "identifier"


def canonical_identifier(value: str) -> str:
    """One spelling per identifier: `whatsapp:+1555…`, `+1555…` and Meta's `1555…` are one number;
    emails are compared in lower case."""
    value = value.strip().removeprefix(_WHATSAPP_PREFIX)
    if _PHONE.match(value):
        return "+" + value.lstrip("+")
    if "@" in value:
        return value.lower()
    return value


def subject_identifiers(subject: Subject) -> set[str]:
    """Every identifier the subject reached us by, canonical: provider ids, numbers, emails."""
    values: set[str] = set()
    for profile in subject.profiles:
        values |= {profile.external_id, profile.phone_number}
    for contact in subject.contacts:
        values |= {contact.email, contact.phone_number or ""}
    identifiers = {canonical_identifier(value) for value in values if value.strip()}
    return {identifier for identifier in identifiers if identifier}


def erased_identifier_hashes(subject: Subject) -> set[str]:
    """The keyed hashes an erasure keeps, so late deliveries naming the subject are not captured."""
    return {_hash(identifier) for identifier in subject_identifiers(subject)}


def is_from_erased_subject(*, provider: str, body: bytes) -> bool:
    """True when a webhook body names an identifier of an erased person (checked before a
    capture is stored: a late delivery or status for them must not bring their data back)."""
    hashes = {_hash(canonical_identifier(value)) for value in _body_values(body)}
    return bool(hashes) and ErasedIdentifier.objects.filter(identifier_hash__in=hashes).exists()


def list_subject_captures(subject: Subject) -> list[CapturedWebhook]:
    """Captures that mention any identifier of the subject (also URL-encoded, in form bodies).

    The database keeps those that may (`_candidate_captures`); each of them is confirmed here,
    on the body decoded and URL-decoded, case ignored. A phone number is searched by its digits:
    every spelling of it contains them.
    """
    tokens = {identifier.lstrip("+") for identifier in subject_identifiers(subject)}
    tokens.discard("")
    if not tokens:
        return []
    found = []
    for capture in _candidate_captures(tokens).order_by("pk").iterator():
        raw = bytes(capture.body).decode("utf-8", errors="replace")
        texts = (raw, unquote_plus(raw), capture.path, unquote_plus(capture.path))
        if any(token in text or token.lower() in text.lower() for token in tokens for text in texts):
            found.append(capture)
    return found


def _candidate_captures(tokens: set[str]) -> QuerySet[CapturedWebhook]:
    """Every capture whose body or path may mention a token: one that holds the token's longest
    plain run (letters, digits, `.-_~`, which neither JSON nor form encoding escapes), any case,
    or a percent-escape of such a character (needless, so it may hide a run). Whatever the
    confirmation above matches is among them, but for the odd non-ASCII letter Python's case
    folding turns into an ASCII one (the Kelvin sign into k), which no provider writes."""
    runs = sorted({max(_PLAIN_RUN.findall(token.lower()), key=len, default="") for token in tokens})
    if "" in runs:
        return CapturedWebhook.objects.all()  # nothing plain to narrow by
    return CapturedWebhook.objects.filter(
        Q(_MayMention(_BodyText("body"), runs=runs)) | Q(_MayMention(F("path"), runs=runs))
    )


# What JSON and form encoding leave as it is (lower case: the texts searched are folded).
_PLAIN_RUN = re.compile(r"[a-z0-9._~-]+")
# A percent-escape of a plain character: %30-%39, %41-%5a, %61-%7a, %2d, %2e, %5f, %7e.
_NEEDLESS_ESCAPE = "%(3[0-9]|[46][1-9a-f]|[57][0-9a]|2[de]|5f|7e)"
_NEEDLESS_ESCAPE_GLOBS = ("*%3[0-9]*", "*%[46][1-9a-f]*", "*%[57][0-9a]*", "*%2[de]*", "*%5f*", "*%7e*")


class _BodyText(Func):
    """A capture's body (bytes, perhaps not UTF-8, perhaps with a NUL) as text: PostgreSQL
    writes the bytes that are not ASCII as escapes, SQLite keeps them."""

    output_field = TextField()
    template = "encode(%(expressions)s, 'escape')"

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, tuple[str | int, ...]]:
        # Without its NULs: GLOB stops at the first.
        template = "replace(CAST(%(expressions)s AS TEXT), char(0), '')"
        return super().as_sql(compiler, connection, template=template, **extra_context)


class _MayMention(Func):
    """Whether a text holds one of `runs` in any (ASCII) case or a needless percent-escape: one
    case-insensitive regular expression on PostgreSQL (the text read once per row); instr and
    GLOB on SQLite, whose REGEXP is Python's and needs UTF-8."""

    output_field = BooleanField()

    def __init__(self, text: Any, *, runs: list[str]) -> None:
        super().__init__(text)
        self.runs = runs

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, tuple[str | int, ...]]:
        sql, params = compiler.compile(self.source_expressions[0])
        # A backslash before a character that is not alphanumeric makes it literal, as in Python.
        pattern = "|".join([*(re.escape(run) for run in self.runs), _NEEDLESS_ESCAPE])
        return f"({sql} ~* %s)", (*params, pattern)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, tuple[str | int, ...]]:
        sql, params = compiler.compile(self.source_expressions[0])
        tests = [f"instr(lower({sql}), %s) > 0" for _ in self.runs]
        tests += [f"lower({sql}) GLOB %s" for _ in _NEEDLESS_ESCAPE_GLOBS]
        values = [*self.runs, *_NEEDLESS_ESCAPE_GLOBS]
        return f"({' OR '.join(tests)})", tuple(part for value in values for part in (*params, value))


def list_subject_admin_log(subject: Subject) -> QuerySet[LogEntry]:
    """The admin history of the subject's objects: contacts, identities, conversations, messages,
    files, audit entries."""
    ids = subject.profile_ids
    objects: list[tuple[type[Model], QuerySet[Any]]] = [
        (Contact, Contact.objects.filter(pk__in=subject.contact_ids)),
        (ClientProfile, ClientProfile.objects.filter(pk__in=ids)),
        (Conversation, Conversation.objects.filter(profile__in=ids)),
        (Message, Message.objects.filter(conversation__profile__in=ids)),
        (Attachment, Attachment.objects.filter(message__conversation__profile__in=ids)),
        (AuditEntry, list_subject_audit_entries(subject)),
    ]
    matches = Q(pk__in=[])
    for model, queryset in objects:
        object_ids = [str(pk) for pk in queryset.values_list("pk", flat=True)]
        if object_ids:
            content_type = ContentType.objects.get_for_model(model)
            matches |= Q(content_type=content_type, object_id__in=object_ids)
    return LogEntry.objects.filter(matches).order_by("action_time", "pk")


def list_subject_audit_entries(subject: Subject) -> QuerySet[AuditEntry]:
    """Audit entries about the subject's contacts, identities and conversations."""
    ids = subject.profile_ids
    return AuditEntry.objects.filter(
        Q(contact__in=subject.contact_ids) | Q(profile__in=ids) | Q(conversation__profile__in=ids)
    )


def _hash(identifier: str) -> str:
    return hash_identifier(kind=_HASH_KIND, normalized=identifier)


def _body_values(body: bytes) -> set[str]:
    """The short string values of a JSON or form body: where identifiers sit."""
    text = body.decode("utf-8", errors="replace")
    try:
        values = set(_json_strings(json.loads(text)))
    except ValueError:
        values = {value for _, value in parse_qsl(text, keep_blank_values=False)}
    return {value for value in values if value.strip() and len(value) <= _MAX_IDENTIFIER_CHARS}


def _json_strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
