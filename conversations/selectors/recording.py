"""The inbound recorder's hottest statements, written as SQL: run in every batch it stores (its
reads, and the two small writes that go with them: services/inbound.py's _record_batch).

Why not the ORM here: as on the reply path (selectors/answering.py), building these statements
costs Django more CPU than PostgreSQL takes to run them, and the recorder's batches run in the
worker whose CPU per message limits how many customers it answers (bench/RESULTS.md, "End to
end"). Each function keeps the meaning of the ORM rule named in it (test_recorder_sql.py
checks them against it); plain SQL that SQLite and PostgreSQL both run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Sized
from datetime import datetime

from django.db import connection

from conversations.models import Conversation, ProcessedMessage
from conversations.selectors.answering import columns_of, instance_from_row
from profiles.models import ClientProfile, Contact


def _rows(sql: str, params: Sequence[object]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _placeholders(values: Sized) -> str:
    return ", ".join(["%s"] * len(values))


def list_identities(*, keys: Iterable[tuple[str, str]], numbers: Iterable[str]) -> list[ClientProfile]:
    """The identities with these (provider, external id) keys or these phone numbers, each with
    its contact loaded: ClientProfile.objects.filter(Q(phone_number__in=numbers) |
    Q(provider=…, external_id__in=…) | …).select_related("contact")."""
    conditions, params = [], []
    numbers = sorted(numbers)
    if numbers:
        conditions.append(f"p.phone_number IN ({_placeholders(numbers)})")
        params.extend(numbers)
    ids_by_provider: dict[str, list[str]] = {}
    for provider, external_id in keys:
        ids_by_provider.setdefault(provider, []).append(external_id)
    for provider, external_ids in ids_by_provider.items():
        conditions.append(f"(p.provider = %s AND p.external_id IN ({_placeholders(external_ids)}))")
        params.extend([provider, *external_ids])
    if not conditions:
        return []
    rows = _rows(
        f"SELECT {columns_of(ClientProfile, 'p')}, {columns_of(Contact, 'k')} FROM profiles_clientprofile p"  # noqa: S608 (ours)
        f" JOIN profiles_contact k ON k.id = p.contact_id WHERE {' OR '.join(conditions)}",
        params,
    )
    split = len(ClientProfile._meta.concrete_fields)
    identities = []
    for row in rows:
        identity = instance_from_row(ClientProfile, row[:split])
        identity.contact = instance_from_row(Contact, row[split:])
        identities.append(identity)
    return identities


def list_open_conversations(*, profile_ids: Iterable[int]) -> list[Conversation]:
    """The open conversations of these identities: Conversation.objects.filter(profile_id__in=…,
    status=Conversation.Status.OPEN)."""
    ids = sorted(set(profile_ids))
    if not ids:
        return []
    rows = _rows(
        f"SELECT {columns_of(Conversation, 'c')} FROM conversations_conversation c"  # noqa: S608 (ours)
        f" WHERE c.profile_id IN ({_placeholders(ids)}) AND c.status = %s",
        [*ids, Conversation.Status.OPEN],
    )
    return [instance_from_row(Conversation, row) for row in rows]


def lock_waiting_deliveries(
    *, limit: int, processed_id: int | None = None, received_before: datetime | None = None
) -> list[tuple[ProcessedMessage, bool]]:
    """Up to `limit` accepted deliveries waiting to be recorded, not quarantined (the one with
    `processed_id`, or those received before `received_before`), fewest attempts and oldest
    first, locked, skipping those another recorder has locked; each with whether its sender is
    one of the business's own numbers (a conversation's business address). As the ORM's
    ProcessedMessage.objects.filter(pending__isnull=False, quarantined_at__isnull=True, …)
    .select_for_update(skip_locked=True).order_by("record_attempts", "received_at", "pk")
    .annotate(is_from_our_number=Exists(Conversation.objects.filter(business_address=
    KeyTextTransform("external_user_id", OuterRef("pending"))))). Call inside a transaction."""
    conditions, params = ["pm.pending IS NOT NULL", "pm.quarantined_at IS NULL"], []
    if processed_id is not None:
        conditions.append("pm.id = %s")
        params.append(processed_id)
    if received_before is not None:
        conditions.append("pm.received_at < %s")
        params.append(connection.ops.adapt_datetimefield_value(received_before))
    sender = _SENDER[connection.vendor]
    lock = " FOR UPDATE OF pm SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    rows = _rows(
        f"SELECT {columns_of(ProcessedMessage, 'pm')}, EXISTS(SELECT 1 FROM conversations_conversation c"  # noqa: S608 (ours)
        f" WHERE c.business_address = {sender}) FROM conversations_processedmessage pm"
        f" WHERE {' AND '.join(conditions)} ORDER BY pm.record_attempts, pm.received_at, pm.id LIMIT %s{lock}",
        [*params, limit],
    )
    return [(instance_from_row(ProcessedMessage, row[:-1]), bool(row[-1])) for row in rows]


# The sender's id in a delivery's pending JSON, as text (what Django's KeyTextTransform writes).
_SENDER = {
    "postgresql": "(pm.pending ->> 'external_user_id')",
    "sqlite": "JSON_EXTRACT(pm.pending, '$.external_user_id')",
}


def clear_pending(*, processed_ids: Iterable[int]) -> None:
    """Mark these deliveries recorded: ProcessedMessage.objects.filter(pk__in=…).update(pending=None)."""
    ids = list(processed_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE conversations_processedmessage SET pending = NULL WHERE id IN ({_placeholders(ids)})",  # noqa: S608 (ours)
            ids,
        )


def mark_customer_wrote(*, conversation_ids: Sequence[int], at: datetime) -> None:
    """The customers of these conversations wrote `at`: each reopened if resolved and woken if
    snoozed (the ORM's .filter(pk__in=…).update(last_customer_message_at=at, updated_at=at,
    resolved_at=None, snoozed_until=None)). Several are locked first in id order, so two
    recorders touching the same conversations cannot deadlock. Call inside a transaction."""
    ids = sorted(conversation_ids)
    placeholders = _placeholders(ids)
    with connection.cursor() as cursor:
        if len(ids) > 1 and connection.features.has_select_for_update:
            cursor.execute(
                f"SELECT id FROM conversations_conversation WHERE id IN ({placeholders}) ORDER BY id FOR UPDATE",  # noqa: S608 (ours)
                ids,
            )
        at_value = connection.ops.adapt_datetimefield_value(at)
        cursor.execute(
            "UPDATE conversations_conversation SET last_customer_message_at = %s, updated_at = %s,"  # noqa: S608 (ours)
            f" resolved_at = NULL, snoozed_until = NULL WHERE id IN ({placeholders})",
            [at_value, at_value, *ids],
        )
