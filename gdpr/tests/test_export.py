import io
import json
import stat
import subprocess
import zipfile
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
from django.contrib import admin
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory

from conversations.models import Attachment, AuditEntry, Conversation, Message
from conversations.providers import simulator
from conversations.tests.helpers import meta_text, post_meta
from gdpr.export import export_subject
from gdpr.subjects import SubjectNotFound, find_subject
from profiles.models import ClientProfile, Contact

from .builders import ADA, CAPTION, GRACE, IMAGE_BYTES, TRANSCRIPT, VOICE_BYTES, build_ada, build_grace

pytestmark = pytest.mark.django_db

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "gdpr_export.schema.json").read_text())


def validate(document: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(document)


def all_messages(document: dict) -> list[dict]:
    return [m for p in document["profiles"] for c in p["conversations"] for m in c["messages"]]


def test_export_of_text_voice_and_image_messages_holds_every_record_and_file_and_validates(
    client, graph_ok, twilio_ok, tmp_path
):
    ada = build_ada(client)
    build_grace(client)
    output = tmp_path / "ada.zip"

    call_command("gdpr_export", ADA["phone"], "--output", str(output), stdout=io.StringIO())

    with zipfile.ZipFile(output) as archive:
        document = json.loads(archive.read("export.json"))
        names = set(archive.namelist())
        validate(document)
        profiles = ClientProfile.objects.filter(phone_number=ADA["phone"])
        assert {p["profile_id"] for p in document["profiles"]} == set(profiles.values_list("pk", flat=True))
        assert len(document["profiles"]) == 2  # Meta and Twilio WhatsApp
        expected = Message.objects.filter(conversation__profile__in=profiles)
        assert {m["id"] for m in all_messages(document)} == set(expected.values_list("pk", flat=True))
        assert {m["kind"] for m in all_messages(document)} >= {"text", "audio", "image"}
        attachments = [a for m in all_messages(document) for a in m["attachments"]]
        assert {a["fields"]["id"] for a in attachments} == {a.pk for a in ada["attachments"]}
        voice = next(a for a in attachments if a["fields"]["content_type"] == "audio/ogg")
        image = next(a for a in attachments if a["fields"]["content_type"] == "image/jpeg")
        assert (voice["fields"]["transcript"], voice["transcript_inferred"]) == (TRANSCRIPT, True)
        assert (image["fields"]["caption"], image["transcript_inferred"]) == (CAPTION, False)
        assert archive.read(voice["archive_path"]) == VOICE_BYTES
        assert archive.read(image["archive_path"]) == IMAGE_BYTES
        assert names == {"export.json", voice["archive_path"], image["archive_path"]}
    texts = [m["text"] for m in all_messages(document)]
    assert ADA["texts"][0] in texts
    assert "Is this the right spare part?" in texts
    statuses = {m["status"] for m in all_messages(document) if m["author"] == "bot"}
    assert statuses == {"sent"}
    # The model wrote the answers to texts; the replies to the files it could not fetch are fixed texts.
    bot = [m for m in all_messages(document) if m["author"] == "bot"]
    assert {(m["written_by"], m["written_by_model"]) for m in bot} == {("ai_model", True), ("business_text", False)}
    assert {m["openai_response_id"] for m in all_messages(document)} >= {"resp_ada_1"}
    meta_profile = next(p for p in document["profiles"] if p["fields"]["provider"] == "meta")
    assert meta_profile["conversations"][0]["openai_conversation_id"] == "conv_ada"
    assert meta_profile["consent"] == {"bot_messages": "allowed", "opted_out_at": None, "opted_in_at": None}
    assert {r["provider"]: r["received_data_of_subject"] for r in document["recipients"]} == {
        "meta": True,
        "twilio": True,
        "openai": True,
    }
    # Nothing of the other customer.
    dumped = json.dumps(document)
    assert GRACE["name"] not in dumped and GRACE["wa_id"] not in dumped and "Grace's own photo" not in dumped
    # The access itself is audited on each profile.
    assert AuditEntry.objects.filter(action="gdpr.export", profile__in=profiles).count() == 2


def test_the_export_carries_every_profile_field_consent_and_audit_entries(client, graph_ok):
    build_ada(client, with_twilio=False)
    profile = ClientProfile.objects.get()
    Contact.objects.filter(pk=profile.contact_id).update(first_name="Ada", company="Analytical Engines Ltd")
    post_meta_stop(client)
    out = io.BytesIO()

    document = export_subject(subject=find_subject(identifier=ADA["bsuid"]), out=out, fmt="json")

    assert json.loads(out.getvalue()) == document
    validate(document)
    [exported] = document["profiles"]
    [contact] = document["contacts"]
    assert set(exported["fields"]) == {f.attname for f in ClientProfile._meta.concrete_fields}
    assert set(contact["fields"]) == {f.attname for f in Contact._meta.concrete_fields}
    assert contact["fields"]["company"] == "Analytical Engines Ltd"
    assert [e["action"] for e in contact["audit_entries"]] == ["consent.opt_out"]
    assert exported["consent"]["bot_messages"] == "opted_out"
    assert datetime.fromisoformat(exported["consent"]["opted_out_at"])
    assert [e["action"] for e in exported["audit_entries"]] == ["consent.opt_out"]


def post_meta_stop(client):
    from conversations.tests.helpers import post_meta

    from .builders import meta_body_as

    stop = meta_body_as("text", ADA, suffix="STOP").replace(ADA["texts"][0].encode(), b"STOP")
    post_meta(client, stop)


@pytest.mark.parametrize(
    ("identifier", "kind"),
    [
        ("+15551234567", "phone"),
        ("15551234567", "phone"),
        ("whatsapp:+15551234567", "phone"),
        ("+1 555-123-4567", "phone"),
        ("US.1000000000000000001", "external_id"),
    ],
)
def test_a_subject_is_found_by_phone_whatsapp_address_or_bsuid(client, graph_ok, twilio_ok, identifier, kind):
    build_ada(client)

    subject = find_subject(identifier=identifier)

    assert subject.kind == kind
    # Whatever names her, the whole contact comes: the Meta and the Twilio identity.
    expected = ClientProfile.objects.filter(phone_number=ADA["phone"])
    assert subject.profile_ids == sorted(expected.values_list("pk", flat=True))


def test_a_subject_is_found_by_profile_id(client, graph_ok):
    build_ada(client, with_twilio=False)
    profile = ClientProfile.objects.get()

    assert find_subject(identifier=str(profile.pk)).profiles == [profile]
    assert find_subject(identifier=str(profile.pk), kind="profile_id").profiles == [profile]


def test_gdpr_export_of_an_unknown_subject_fails_with_a_clear_message(tmp_path):
    output = tmp_path / "nobody.json"

    with pytest.raises(CommandError, match="No contact matches this phone number"):
        call_command("gdpr_export", "+15550000000", "--output", str(output))

    assert not output.exists()
    with pytest.raises(SubjectNotFound):
        find_subject(identifier="US.unknown")


def test_gdpr_export_refuses_to_overwrite_a_file_without_force(client, graph_ok, tmp_path):
    build_ada(client, with_twilio=False)
    output = tmp_path / "ada.json"
    output.write_text("keep me")

    with pytest.raises(CommandError, match="--force"):
        call_command("gdpr_export", ADA["bsuid"], "--format", "json", "--output", str(output))
    assert output.read_text() == "keep me"

    call_command(
        "gdpr_export", ADA["bsuid"], "--format", "json", "--output", str(output), "--force", stdout=io.StringIO()
    )
    validate(json.loads(output.read_text()))


def test_an_attachment_whose_file_is_missing_is_listed_but_not_archived(client, graph_ok):
    build_ada(client, with_twilio=False)
    attachment = Attachment.objects.filter(content_type="image/jpeg").get()
    attachment.file.storage.delete(attachment.file.name)
    out = io.BytesIO()

    document = export_subject(subject=find_subject(identifier=ADA["bsuid"]), out=out, fmt="zip")

    exported = next(a for m in all_messages(document) for a in m["attachments"] if a["fields"]["id"] == attachment.pk)
    assert (exported["file_stored"], exported["archive_path"]) == (False, "")
    assert len(zipfile.ZipFile(out).namelist()) == 2  # export.json and the voice note


def test_a_simulated_customer_answered_offline_is_told_no_processor_and_no_ai_model_saw_them(client, settings):
    settings.OPENAI_API_KEY = ""  # the offline responder answers
    body = simulator.build_message_body(
        message_id=simulator.new_message_id(),
        customer_id="SIM.tester01",
        phone_number="+15551230000",
        name="Sim Tester",
        kind="text",
        content={"body": "What are your opening hours?"},
    )
    post_meta(client, body)

    document = export_subject(subject=find_subject(identifier="+15551230000"), out=io.BytesIO(), fmt="json")

    validate(document)
    assert {r["provider"]: (r["received_data_of_subject"], r["evidence"]) for r in document["recipients"]} == {
        "meta": (False, []),
        "twilio": (False, []),
        "openai": (False, []),
    }
    messages = all_messages(document)
    assert [(m["author"], m["written_by"], m["written_by_model"]) for m in messages] == [
        ("customer", "customer", False),
        ("bot", "offline_responder", False),
    ]
    assert {m["carried_by"] for m in messages} == {None}
    assert not any("AI model" in note and "bot" in note for note in document["notes"])


def test_a_meta_customer_answered_by_the_model_is_told_meta_and_openai_received_their_data(client, graph_ok):
    build_ada(client, with_twilio=False)

    document = export_subject(subject=find_subject(identifier=ADA["bsuid"]), out=io.BytesIO(), fmt="json")

    received = {r["provider"]: r["received_data_of_subject"] for r in document["recipients"]}
    assert received == {"meta": True, "twilio": False, "openai": True}
    meta = next(r for r in document["recipients"] if r["provider"] == "meta")
    assert meta["evidence"] == [f"conversation {Conversation.objects.get().pk} (WhatsApp (Meta))"]
    bot = [m for m in all_messages(document) if m["author"] == "bot"]
    assert {(m["written_by"], m["written_by_model"], m["carried_by"]) for m in bot} == {
        ("ai_model", True, "meta"),
        ("business_text", False, "meta"),  # the fallback to a voice note it could not fetch
    }


def test_a_fixed_text_of_the_business_is_not_said_to_be_written_by_a_model(client, graph_ok):
    post_meta(client, meta_text("STOP", "wamid.stop"))  # the opt-out confirmation is a fixed text

    document = export_subject(subject=find_subject(identifier=ADA["bsuid"]), out=io.BytesIO(), fmt="json")

    [confirmation] = [m for m in all_messages(document) if m["author"] == "bot"]
    assert (confirmation["written_by"], confirmation["written_by_model"]) == ("business_text", False)
    assert next(r for r in document["recipients"] if r["provider"] == "openai")["received_data_of_subject"] is False


def test_the_export_holds_the_subjects_webhook_captures_and_admin_history(client, graph_ok, settings, staff_user):
    settings.WEBHOOK_CAPTURE_HOURS = 24
    build_ada(client, with_twilio=False)
    build_grace(client)
    ada = ClientProfile.objects.get(external_id=ADA["bsuid"])
    request = RequestFactory().post("/admin/")
    request.user = staff_user
    admin.site._registry[ClientProfile].log_change(request, ada, [{"changed": {"fields": ["company"]}}])

    document = export_subject(subject=find_subject(identifier=ADA["phone"]), out=io.BytesIO(), fmt="json")

    validate(document)
    assert len(document["webhook_captures"]) == 3  # her text, voice note and photo
    assert all(ADA["bsuid"] in capture["body"] for capture in document["webhook_captures"])
    [entry] = document["admin_history"]
    assert entry["object"] == "profiles.clientprofile" and entry["object_id"] == str(ada.pk)
    assert entry["action"] == "changed" and entry["change_message"] == "Changed company."
    assert entry["staff_user_id"] == staff_user.pk


def test_gdpr_export_writes_into_the_export_folder_owner_only_never_the_working_directory(
    client, graph_ok, settings, tmp_path, monkeypatch
):
    build_ada(client, with_twilio=False)
    settings.GDPR_EXPORT_DIR = tmp_path / "data" / "gdpr-exports"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    monkeypatch.chdir(checkout)
    out = io.StringIO()

    call_command("gdpr_export", ADA["bsuid"], "--format", "json", stdout=out)

    [written] = settings.GDPR_EXPORT_DIR.iterdir()
    assert written.name.startswith("gdpr-export-") and str(written) in out.getvalue()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.GDPR_EXPORT_DIR.stat().st_mode) == 0o700
    assert list(checkout.iterdir()) == []
    validate(json.loads(written.read_text()))


def test_the_default_export_folder_is_outside_the_checkout_and_git_ignores_export_files():
    from django.conf import settings

    root = Path(__file__).resolve().parents[2]
    assert root not in Path(settings.GDPR_EXPORT_DIR).resolve().parents
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "gdpr-export-0123456789ab-20260101-000000.zip"], cwd=root, check=False
    )
    assert ignored.returncode == 0


def test_a_private_note_is_exported_as_a_message_written_by_staff_for_colleagues_that_never_left(
    client, graph_ok, staff_user
):
    from conversations.services.staff import add_private_note

    build_ada(client, with_twilio=False)
    conversation = Conversation.objects.get()
    add_private_note(conversation_id=conversation.pk, user=staff_user, text="VIP: refund without asking")

    document = export_subject(subject=find_subject(identifier=ADA["bsuid"]), out=io.BytesIO(), fmt="json")

    validate(document)
    [note] = [m for m in all_messages(document) if m["author"] == "private_note"]
    assert (note["text"], note["written_by"], note["written_by_model"], note["carried_by"]) == (
        "VIP: refund without asking",
        "staff_private_note",
        False,
        None,
    )
