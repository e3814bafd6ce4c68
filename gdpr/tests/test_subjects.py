"""Finding a person: every kind of identifier resolves to the whole contact, with every identity
(Meta, Twilio WhatsApp, SMS, web chat); an unknown one is a clear error that does nothing."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from conversations.models import AuditEntry, Conversation, Message
from conversations.services.contacts import merge_contacts
from conversations.services.profiles import update_contact_by_staff
from conversations.services.webchat import receive_webchat_message
from conversations.tests.helpers import meta_body, post_meta, post_twilio, twilio_params
from gdpr.models import ErasureRecord
from gdpr.subjects import SubjectNotFound, find_subject, guess_kind
from profiles.models import ClientProfile, Contact

from .builders import ADA, GRACE, meta_body_as

pytestmark = pytest.mark.django_db

VISITOR = "visitor-5d1c9e"


@pytest.fixture
def people(client, graph_ok, twilio_ok, fake_openai):
    """Ada on Meta, Twilio WhatsApp, SMS and (merged by staff) the web chat; Grace on Meta."""
    post_meta(client, meta_body("text"))
    post_twilio(client, twilio_params("whatsapp_text"))
    post_twilio(client, twilio_params("sms_inbound"))
    receive_webchat_message(visitor_id=VISITOR, client_message_id="c1", text="Hi from the website")
    post_meta(client, meta_body_as("text", GRACE, suffix="GRACE"))
    ada = ClientProfile.objects.get(external_id=ADA["bsuid"]).contact
    visitor = ClientProfile.objects.get(external_id=VISITOR).contact
    update_contact_by_staff(contact_id=visitor.pk, user=None, changes={"email": "ada@example.com"})
    merge_contacts(target_id=ada.pk, source_id=visitor.pk, user=None)
    return {
        "ada": Contact.objects.get(pk=ada.pk),
        "grace": ClientProfile.objects.get(external_id=GRACE["bsuid"]).contact,
    }


def every_identity_of(contact: Contact) -> list[int]:
    return sorted(contact.identities.values_list("pk", flat=True))


# One set of people for every kind of identifier (building them is five webhooks and a merge);
# each kind is its own subtest, reported on its own.
IDENTIFIER_KINDS = [
    ("+15551234567", None, "phone"),
    ("whatsapp:+15551234567", None, "phone"),
    ("ADA@Example.com", None, "email"),
    ("US.1000000000000000001", None, "external_id"),
    ("whatsapp:+15551234567", "external_id", "external_id"),
    (VISITOR, None, "external_id"),
    (VISITOR, "visitor_id", "visitor_id"),
    ("{contact}", "contact_id", "contact_id"),
    ("{web_identity}", None, "profile_id"),
]


def test_every_kind_of_identifier_finds_the_whole_contact(people, subtests):
    ada = people["ada"]
    web_identity = ClientProfile.objects.get(external_id=VISITOR)
    for identifier, by, kind in IDENTIFIER_KINDS:
        identifier = identifier.format(contact=ada.pk, web_identity=web_identity.pk)
        with subtests.test(identifier=identifier, by=by):
            subject = find_subject(identifier=identifier, kind=by)

            assert subject.kind == kind
            assert subject.contact_ids == [ada.pk]
            assert subject.profile_ids == every_identity_of(ada)
            assert {p.provider for p in subject.profiles} == {"meta", "twilio", "webchat"}
            assert len(subject.profiles) == 4


def test_an_email_is_read_as_an_email(people):
    assert guess_kind(identifier="ada@example.com") == "email"
    assert find_subject(identifier="ada@example.com").normalized == "ada@example.com"


def test_a_phone_shared_by_two_contacts_after_a_split_finds_both(people):
    from conversations.services.contacts import split_identity

    sms = ClientProfile.objects.get(external_id="+15551234567")
    split_identity(identity_id=sms.pk, user=None)

    subject = find_subject(identifier="+15551234567")

    assert len(subject.contact_ids) == 2
    assert sms.pk in subject.profile_ids and len(subject.profiles) == 4


UNKNOWN_IDENTIFIERS = [
    ("+15550000000", None),
    ("nobody@example.com", None),
    ("US.unknown", None),
    ("visitor-unknown", "visitor-id"),
    ("999999", "contact-id"),
    ("999999", None),
    ("not-a-number", "contact-id"),
    (ADA["bsuid"], "visitor-id"),  # a Meta id is no web chat visitor
]


def test_an_unknown_identifier_is_a_clear_error_that_does_nothing(people, tmp_path, subtests):
    # One set of people for all: each identifier must leave it as it was, which the next one checks too.
    for number, (identifier, by) in enumerate(UNKNOWN_IDENTIFIERS):
        with subtests.test(identifier=identifier, by=by):
            audit_before = AuditEntry.objects.count()
            output = tmp_path / f"export-{number}.json"
            options = ["--by", by] if by else []

            with pytest.raises(CommandError, match="Nothing was done"):
                call_command("gdpr_export", identifier, *options, "--output", str(output))
            with pytest.raises(CommandError, match="Nothing was done"):
                call_command("gdpr_erase", identifier, *options, "--yes")

            assert not output.exists()
            assert not ErasureRecord.objects.exists()
            assert AuditEntry.objects.count() == audit_before
            assert Contact.objects.count() == 2 and ClientProfile.objects.count() == 5


def test_erasure_by_email_removes_every_channel_of_the_person_and_leaves_the_other(people):
    call_command("gdpr_erase", "ada@example.com", "--yes", "--operator", "dpo", stdout=io.StringIO())

    assert list(Contact.objects.all()) == [people["grace"]]
    assert set(ClientProfile.objects.values_list("external_id", flat=True)) == {GRACE["bsuid"]}
    assert set(Conversation.objects.values_list("profile__external_id", flat=True)) == {GRACE["bsuid"]}
    assert Message.objects.filter(conversation__profile__external_id=GRACE["bsuid"]).exists()
    record = ErasureRecord.objects.get()
    assert (record.identifier_kind, record.counts["contacts"], record.counts["profiles"]) == ("email", 1, 4)
    with pytest.raises(SubjectNotFound):
        find_subject(identifier=VISITOR)


def test_export_by_contact_id_holds_the_contact_and_every_identity(people, tmp_path):
    output = tmp_path / "ada.json"

    call_command(
        "gdpr_export",
        str(people["ada"].pk),
        "--by",
        "contact-id",
        "--format",
        "json",
        "-o",
        str(output),
        stdout=io.StringIO(),
    )

    document = json.loads(output.read_text())
    [contact] = document["contacts"]
    assert contact["fields"]["email"] == "ada@example.com"
    assert {p["fields"]["external_id"] for p in document["profiles"]} == {
        ADA["bsuid"],
        "whatsapp:+15551234567",
        "+15551234567",
        VISITOR,
    }
    assert "contact.merged" in [e["action"] for e in contact["audit_entries"]]
    assert GRACE["name"] not in json.dumps(document)


@pytest.mark.parametrize("name", ["gdpr_erase", "gdpr_export"])
def test_the_help_names_every_kind_of_identifier(name):
    from django.core.management import load_command_class

    parser = load_command_class("gdpr", name).create_parser("manage.py", name)
    text = " ".join(parser.format_help().split())
    for kind in ("phone", "email", "external-id", "visitor-id", "contact-id", "profile-id", "every contact"):
        assert kind in text
