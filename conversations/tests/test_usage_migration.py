"""The data migration that moved budget counters from channel identities to their contact: one
person's counters of one period added up, each reply row kept (the sliding reply rate)."""

from datetime import UTC, datetime

import pytest

BEFORE = [("conversations", "0008_message_search_index")]
AFTER = [("conversations", "0009_usage_per_contact")]


# Real commits: migrations run outside the test's transaction (and the tables are flushed after).
@pytest.mark.django_db(transaction=True)
def test_the_counters_of_one_persons_identities_become_the_contacts(migrate_to):
    old = migrate_to(BEFORE)
    Contact = old.get_model("profiles", "Contact")
    Identity = old.get_model("profiles", "ClientProfile")
    Window = old.get_model("conversations", "UsageWindow")
    ada, bob = Contact.objects.create(), Contact.objects.create()
    whatsapp = Identity.objects.create(contact=ada, provider="meta", external_id="US.1")
    sms = Identity.objects.create(contact=ada, provider="twilio", external_id="+15551234567")
    bob_whatsapp = Identity.objects.create(contact=bob, provider="meta", external_id="US.2")
    day, minute = datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
    for identity, tokens in ((whatsapp, 300), (sms, 200), (bob_whatsapp, 50)):
        Window.objects.create(profile=identity, kind="tokens", starts_at=day, count=tokens)
        Window.objects.create(profile=identity, kind="replies", starts_at=minute, count=2)

    new = migrate_to(AFTER)

    Window = new.get_model("conversations", "UsageWindow")
    tokens = dict(Window.objects.filter(kind="tokens").values_list("contact_id", "count"))
    assert tokens == {ada.pk: 500, bob.pk: 50}
    replies = sorted(Window.objects.filter(kind="replies").values_list("contact_id", "count"))
    assert replies == sorted([(ada.pk, 2), (ada.pk, 2), (bob.pk, 2)])
