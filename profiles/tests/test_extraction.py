"""The merge rules of profile extraction, on their own."""

from datetime import UTC, datetime

from profiles.extraction import ClientInfo, merge_client_info
from profiles.models import Contact

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def info(**fields) -> ClientInfo:
    return ClientInfo(
        **{"first_name": None, "last_name": None, "company": None, "email": None, "declined": False, **fields}
    )


def test_it_writes_new_values_with_their_source_and_time():
    contact = Contact()

    updates = merge_client_info(contact=contact, info=info(first_name="  Ada ", email="ADA@Example.com"), now=NOW)

    assert updates["first_name"] == "Ada"
    assert updates["email"] == "ada@example.com"
    assert updates["field_sources"]["first_name"] == {"source": "extracted", "at": NOW.isoformat()}


def test_it_never_overwrites_a_staff_value_nor_erases_with_an_empty_one():
    contact = Contact(
        first_name="Ada",
        company="Engines",
        field_sources={"first_name": {"source": "staff", "at": "2026-01-01T00:00:00+00:00"}},
    )

    assert merge_client_info(contact=contact, info=info(first_name="Adeline", company=""), now=NOW) == {}


def test_it_rejects_an_invalid_email_and_an_overlong_value():
    contact = Contact()

    updates = merge_client_info(contact=contact, info=info(email="ada@", company="x" * 201), now=NOW)

    assert updates == {}


def test_a_refusal_is_remembered_once():
    contact = Contact()

    assert merge_client_info(contact=contact, info=info(declined=True), now=NOW) == {"details_declined_at": NOW}
    contact.details_declined_at = NOW
    assert merge_client_info(contact=contact, info=info(declined=True), now=NOW) == {}
