"""The recorder's statements written as SQL (selectors/recording.py) find what the ORM rule
each names finds: checked against it on SQLite and on PostgreSQL."""

import pytest
from django.db.models import Q
from django.utils import timezone

from conversations.models import Conversation
from conversations.selectors.recording import list_identities, list_open_conversations
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
