"""The reply path's hottest statements, written as SQL: run for every customer message.

Why not the ORM here: building these statements (joins, subqueries, OR-ed conditions) costs
Django 1-2.5 ms of CPU each, ten times what PostgreSQL takes to run them, and the worker's CPU
per message is what limits how many customers one worker answers (bench/RESULTS.md, "End to
end"). Each function keeps the meaning of the ORM code it replaces, named where it is; the
statements are plain SQL that SQLite and PostgreSQL both run (the test suite runs on both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Model

from conversations.models import Conversation, Message
from conversations.selectors.prompt import prompt_role
from conversations.turns import Turn
from profiles.models import ClientProfile, Contact


def newer_customer_message_sql(*, conversation: str, message: str) -> str:
    """SQL selecting a customer message of `conversation` newer than `message`, commands aside
    (selectors/prompt.py's list_newer_customer_messages); both are SQL: a column, or %s."""
    return (
        f"SELECT 1 FROM conversations_message newer WHERE newer.conversation_id = {conversation}"  # noqa: S608 (ours)
        f" AND newer.author = '{Message.Author.CUSTOMER}' AND newer.id > {message} AND newer.text NOT LIKE '/%%'"
    )


_ANSWERED = (Message, Conversation, ClientProfile, Contact)


@cache
def _message_to_answer_sql() -> str:
    columns = ", ".join(columns_of(model, alias) for model, alias in zip(_ANSWERED, ("m", "c", "p", "k"), strict=True))
    # agents.selectors' entry agent (at most one: a constraint), and whether a newer message waits.
    entry_agent = "SELECT agent.id FROM agents_agent agent WHERE agent.is_entry"
    newer = newer_customer_message_sql(conversation="m.conversation_id", message="m.id")
    joins = (
        "conversations_message m JOIN conversations_conversation c ON c.id = m.conversation_id"
        " JOIN profiles_clientprofile p ON p.id = c.profile_id JOIN profiles_contact k ON k.id = p.contact_id"
    )
    return f"SELECT {columns}, ({entry_agent}), EXISTS({newer}) FROM {joins} WHERE m.id = %s"  # noqa: S608 (ours)


def get_message_to_answer(*, message_id: int) -> Message:
    """The customer message with its conversation, profile and contact, its `entry_agent_id`
    (the entry agent's id, or None) and `has_newer` (a newer customer message waits): what
    answering it reads, in one statement. Raises Message.DoesNotExist."""
    with connection.cursor() as cursor:
        cursor.execute(_message_to_answer_sql(), [message_id])
        row = cursor.fetchone()
    if row is None:
        raise Message.DoesNotExist(f"message {message_id}")
    instances, start = [], 0
    for model in _ANSWERED:
        end = start + len(model._meta.concrete_fields)
        instances.append(instance_from_row(model, row[start:end]))
        start = end
    message, conversation, profile, contact = instances
    entry_agent_id, has_newer = row[start:]
    profile.contact = contact
    conversation.profile = profile
    message.conversation = conversation
    message.entry_agent_id = entry_agent_id
    message.has_newer = bool(has_newer)
    return message


def list_turns_for_prompt(*, message: Message, limit: int) -> list[Turn]:
    """The last `limit` messages with words in them, up to and including `message`, oldest first
    (which messages: selectors/prompt.py's _prompt_messages, also used for the summary)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.author, m.text FROM conversations_message m"
            " LEFT JOIN conversations_message question ON question.id = m.in_reply_to_id"
            " WHERE m.conversation_id = %s AND m.id <= %s AND m.text <> '' AND m.author <> %s AND m.status <> %s"
            " AND m.text NOT LIKE '/%%' AND (question.id IS NULL OR question.text NOT LIKE '/%%')"
            " ORDER BY m.id DESC LIMIT %s",
            [message.conversation_id, message.pk, Message.Author.PRIVATE_NOTE, Message.Status.FAILED, limit],
        )
        recent = cursor.fetchall()
    return [Turn(role=prompt_role(author), text=text) for author, text in reversed(recent)]


Converter = Callable[[Any, Any, Any], Any]


@cache
def columns_of(model: type[Model], alias: str) -> str:
    """Every concrete column of `model` under `alias`, in the order `instance_from_row` reads."""
    return ", ".join(f"{alias}.{connection.ops.quote_name(field.column)}" for field in model._meta.concrete_fields)


def instance_from_row(model: type[Model], row: Sequence[Any]) -> Any:
    """The model from its columns (all concrete fields, in order), the values converted as the
    ORM converts them."""
    values = []
    for value, (column, converters) in zip(row, _converters(model, connection.vendor), strict=True):
        for converter in converters:
            value = converter(value, column, connection)
        values.append(value)
    return model.from_db(connection.alias, [field.attname for field in model._meta.concrete_fields], values)


@cache
def _converters(model: type[Model], vendor: str) -> list[tuple[Any, list[Converter]]]:
    """Per column, what the ORM applies to a value read (SQLite's dates and decimals, JSON…)."""
    result = []
    for field in model._meta.concrete_fields:
        column = field.get_col(model._meta.db_table)
        result.append((column, [*connection.ops.get_db_converters(column), *field.get_db_converters(connection)]))
    return result
