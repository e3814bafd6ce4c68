"""The recorder's statements written as SQL (selectors/recording.py) find what the ORM rule
each names finds: checked against it on SQLite and on PostgreSQL."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from conversations.models import Conversation, ProcessedMessage
from conversations.selectors.recording import (
    clear_pending,
    list_identities,
    list_open_conversations,
    lock_waiting_deliveries,
    mark_customer_wrote,
)
from profiles.models import ClientProfile, Contact

pytestmark = pytest.mark.django_db


def fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def identity(contact: Contact, provider: str, external_id: str, number: str = "") -> ClientProfile:
    return ClientProfile.objects.create(
        contact=contact, provider=provider, external_id=external_id, phone_number=number
    )


def test_identities_are_found_by_key_or_number_with_their_contacts_as_the_orm_finds_them():
    # Values the ORM converts on the way in (dates, JSON; SQLite stores them as text).
    ada = Contact.objects.create(
        phone_number="+15550001",
        first_name="Ada",
        opted_in_at=timezone.now(),
        field_sources={"first_name": {"by": "x"}},
    )
    bob = Contact.objects.create()
    identity(ada, "meta", "15550001", "+15550001")
    identity(ada, "twilio", "whatsapp:+15550001", "+15550001")  # the same number on another provider
    identity(bob, "meta", "15550002")
    identity(bob, "twilio", "15550002")  # the same external id on another provider
    identity(bob, "meta", "15550003", "+15550003")

    cases = [
        ([("meta", "15550002")], set()),
        ([("meta", "15550002"), ("twilio", "nobody")], {"+15550001"}),
        ([("twilio", "whatsapp:+15550001"), ("meta", "15550003")], {"+15550009"}),
        ([("meta", "nobody")], set()),
    ]
    for keys, numbers in cases:
        matches = Q(phone_number__in=sorted(numbers)) if numbers else Q(pk__in=[])
        for provider in {provider for provider, _ in keys}:
            matches |= Q(provider=provider, external_id__in=[e for p, e in keys if p == provider])
        orm = ClientProfile.objects.filter(matches).select_related("contact").order_by("pk")

        found = sorted(list_identities(keys=keys, numbers=numbers), key=lambda found: found.pk)

        assert [fields(i) for i in found] == [fields(i) for i in orm]
        assert [fields(i.contact) for i in found] == [fields(i.contact) for i in orm]
    assert list_identities(keys=[], numbers=set()) == []


def test_open_conversations_are_the_ones_the_orm_rule_selects():
    contact = Contact.objects.create()
    first, second, other = (identity(contact, "meta", str(n)) for n in range(3))
    for profile in (first, second, other):
        Conversation.objects.create(profile=profile, channel="whatsapp", business_address="1555")
    Conversation.objects.create(
        profile=first,
        channel="whatsapp",
        business_address="1555",
        status=Conversation.Status.CLOSED,
        resolved_at=timezone.now(),
    )
    Conversation.objects.create(profile=second, channel="sms", business_address="1666", needs_human=True)

    wanted = [first.pk, second.pk, second.pk]
    orm = Conversation.objects.filter(profile_id__in=wanted, status=Conversation.Status.OPEN).order_by("pk")

    found = sorted(list_open_conversations(profile_ids=wanted), key=lambda found: found.pk)

    assert [fields(c) for c in found] == [fields(c) for c in orm]
    assert len(found) == 3
    assert list_open_conversations(profile_ids=[]) == []


def test_the_waiting_deliveries_are_the_ones_the_orm_rule_locks_in_its_order_with_the_own_number_guard():
    contact = Contact.objects.create()
    Conversation.objects.create(profile=identity(contact, "meta", "1"), channel="whatsapp", business_address="15550100")
    now = timezone.now()

    def accepted(n: int, sender: str, *, minutes_ago: int, **fields) -> ProcessedMessage:
        processed = ProcessedMessage.objects.create(
            provider="meta",
            provider_message_id=f"wamid.{n}",
            pending={"external_user_id": sender, "text": f"{n} \u00e9"},
        )
        ProcessedMessage.objects.filter(pk=processed.pk).update(
            received_at=now - timedelta(minutes=minutes_ago), **fields
        )
        return processed

    accepted(1, "15550001", minutes_ago=5)
    accepted(2, "15550100", minutes_ago=4)  # from one of the business's own numbers
    accepted(3, "15550002", minutes_ago=9, record_attempts=2)  # failed before: after the others
    accepted(4, "15550003", minutes_ago=1)
    accepted(5, "15550004", minutes_ago=7, quarantined_at=now)
    accepted(6, "15550005", minutes_ago=8, pending=None)  # recorded
    single = accepted(7, "15550006", minutes_ago=2, record_attempts=1)

    def orm(limit: int, **filters) -> list:
        rows = (
            ProcessedMessage.objects.filter(pending__isnull=False, quarantined_at__isnull=True, **filters)
            .order_by("record_attempts", "received_at", "pk")
            .annotate(
                ours=Exists(
                    Conversation.objects.filter(
                        business_address=KeyTextTransform("external_user_id", OuterRef("pending"))
                    )
                )
            )[:limit]
        )
        return [(fields(row), row.ours) for row in rows]

    for limit, filters, sql in [
        (100, {}, {}),
        (2, {}, {}),
        (100, {"received_at__lt": now - timedelta(minutes=3)}, {"received_before": now - timedelta(minutes=3)}),
        (1, {"pk": single.pk}, {"processed_id": single.pk}),
    ]:
        with transaction.atomic():
            locked = lock_waiting_deliveries(limit=limit, **sql)
        assert [(fields(processed), ours) for processed, ours in locked] == orm(limit, **filters)
    with transaction.atomic():
        locked = lock_waiting_deliveries(limit=100)
    assert [(processed.provider_message_id, ours) for processed, ours in locked] == [
        ("wamid.1", False),
        ("wamid.2", True),
        ("wamid.4", False),
        ("wamid.7", False),
        ("wamid.3", False),
    ]

    clear_pending(processed_ids=[processed.pk for processed, _ in locked[:2]])
    assert list(
        ProcessedMessage.objects.filter(pending__isnull=True)
        .values_list("provider_message_id", flat=True)
        .order_by("pk")
    ) == ["wamid.1", "wamid.2", "wamid.6"]


def test_a_customer_writing_changes_the_conversations_as_the_orm_update_does():
    contact = Contact.objects.create()
    earlier = timezone.now() - timedelta(days=2)
    pairs = []
    for n in range(3):  # twins: one changed by the ORM, one by the SQL
        twins = [
            Conversation.objects.create(
                profile=identity(contact, "meta", f"{n}{side}"),
                channel="whatsapp",
                business_address="1555",
                status=Conversation.Status.CLOSED if n else Conversation.Status.OPEN,
                resolved_at=earlier if n else None,
                snoozed_until=earlier if n == 2 else None,
                last_customer_message_at=earlier,
            )
            for side in "ab"
        ]
        pairs.append(twins)
    untouched = Conversation.objects.create(
        profile=identity(contact, "meta", "x"), channel="whatsapp", business_address="1555", resolved_at=earlier
    )
    at = timezone.now()

    with transaction.atomic():
        Conversation.objects.filter(pk__in=[orm.pk for orm, _ in pairs]).update(
            last_customer_message_at=at, updated_at=at, resolved_at=None, snoozed_until=None
        )
        mark_customer_wrote(conversation_ids=[sql.pk for _, sql in pairs[::-1]], at=at)
    mark_customer_wrote(conversation_ids=[pairs[0][1].pk], at=at)  # one alone: nothing to lock

    def changed(conversation: Conversation) -> dict:
        conversation.refresh_from_db()
        return {
            key: value for key, value in fields(conversation).items() if key not in ("id", "profile_id", "created_at")
        }

    for orm, sql in pairs:
        assert changed(sql) == changed(orm)
        assert (sql.last_customer_message_at, sql.resolved_at, sql.snoozed_until) == (at, None, None)
    assert changed(untouched)["resolved_at"] == earlier
