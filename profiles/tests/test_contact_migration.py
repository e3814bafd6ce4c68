"""The data migration that turned profiles into identities of contacts: grouped by E.164 number,
the person's fields moved to the contact (a staff value first, then the newest), a STOP kept."""

import pytest
from django.utils import timezone

BEFORE = [("profiles", "0001_initial")]
AFTER = [("profiles", "0004_person_fields_on_contact")]


# Real commits: migrations run outside the test's transaction (and the tables are flushed after).
@pytest.mark.django_db(transaction=True)
def test_profiles_of_one_number_become_one_contact_with_the_persons_fields(migrate_to):
    old = migrate_to(BEFORE)
    Profile = old.get_model("profiles", "ClientProfile")
    stopped = timezone.now()
    Profile.objects.create(
        provider="twilio",
        external_id="+15551234567",
        phone_number="+15551234567",
        first_name="Ada",
        company="Analytical Engines",
        field_sources={"company": {"source": "staff", "at": "2026-01-01T00:00:00+00:00"}},
        opted_out_at=stopped,
    )
    Profile.objects.create(
        provider="meta",
        external_id="US.1",
        phone_number="+15551234567",
        first_name="Adeline",
        company="Engines (said in chat)",
        email="ada@example.com",
        field_sources={"first_name": {"source": "extracted"}, "company": {"source": "extracted"}},
    )
    Profile.objects.create(provider="webchat", external_id="visitor-1", first_name="Web")
    Profile.objects.create(provider="meta", external_id="US.2", phone_number="+15557654321")

    new = migrate_to(AFTER)

    Contact = new.get_model("profiles", "Contact")
    Identity = new.get_model("profiles", "ClientProfile")
    assert Contact.objects.count() == 3
    ada = Contact.objects.get(phone_number="+15551234567")
    assert set(Identity.objects.filter(contact=ada).values_list("external_id", flat=True)) == {"US.1", "+15551234567"}
    # The newest value wins, a staff one before any; a STOP on either channel stands.
    assert (ada.first_name, ada.company, ada.email) == ("Adeline", "Analytical Engines", "ada@example.com")
    assert ada.field_sources["company"]["source"] == "staff"
    assert ada.opted_out_at == stopped
    visitor = Identity.objects.get(external_id="visitor-1").contact
    assert (visitor.phone_number, visitor.first_name) == (None, "Web")
    assert Identity.objects.get(external_id="US.2").contact.phone_number == "+15557654321"
