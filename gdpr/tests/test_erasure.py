import io
import json
import logging
import threading

import pytest
import responses
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import RequestFactory

from conversations.models import (
    Attachment,
    AuditEntry,
    CapturedWebhook,
    Conversation,
    Message,
    ModelUsage,
    ProcessedMessage,
)
from conversations.services.replies import reply_to_message
from conversations.tasks import record_inbound_message, send_outbound_message
from conversations.tests.fakes import GRAPH_MESSAGES, TWILIO_MESSAGES
from conversations.tests.helpers import GRAPH_URL, meta_body, post_meta, post_twilio, twilio_params

# media_settings (autouse there, so here too): the CDN's name resolves to a public address for the SSRF guard.
from conversations.tests.test_media import CDN_META, MEDIA_IDS, jpeg, media_settings  # noqa: F401
from gdpr.erasure import erase_subject, plan_erasure
from gdpr.models import ErasedIdentifier, ErasureRecord, RemoteDeletion
from gdpr.remote import run_remote_deletions
from gdpr.subjects import find_subject, hash_identifier
from gdpr.tasks import delete_remote_copies, retry_pending_remote_deletions
from gdpr.traces import list_subject_captures
from profiles.models import ClientProfile, Contact
from whatsbot_project.celery import app as celery_app

from .builders import ADA, CAPTION, GRACE, TRANSCRIPT, build_ada, build_grace, meta_body_as, wamid_phone_part

pytestmark = pytest.mark.django_db

ADA_NEEDLES = [
    ADA["wa_id"][1:],  # the number with or without +, in `whatsapp:+…` too
    wamid_phone_part(ADA["wa_id"]),  # the number inside Meta's message ids
    ADA["bsuid"],
    "Lovelace",
    ADA["texts"][0],
    "Is this the right spare part?",
    TRANSCRIPT,
    CAPTION,
]


def rows_mentioning(needles: list[str]) -> list[str]:
    """Every row of every model whose field values mention any needle."""
    found = []
    for model in apps.get_models():
        for row in model.objects.all():
            values = json.dumps({f.attname: getattr(row, f.attname) for f in model._meta.concrete_fields}, default=str)
            found += [f"{model._meta.label}#{row.pk}: {n}" for n in needles if n in values]
    return found


def stored_files() -> set[str]:
    def walk(path):
        dirs, files = default_storage.listdir(path)
        names = {f"{path}/{f}".lstrip("/") for f in files}
        for directory in dirs:
            names |= walk(f"{path}/{directory}".lstrip("/"))
        return names

    return walk("") if default_storage.exists("") else set()


@pytest.fixture
def processors(openai_store, twilio_deletions, graph_deletions):
    openai_store.conversations["conv_ada"] = ["msg_ada_1", "msg_ada_2", "msg_ada_3"]
    openai_store.responses.add("resp_ada_1")
    return {"openai": openai_store, "twilio": twilio_deletions, "graph": graph_deletions}


def test_after_erase_no_model_or_storage_holds_anything_about_the_subject_and_others_are_intact(
    client, graph_ok, twilio_ok, processors
):
    ada = build_ada(client)
    build_grace(client)
    grace_before = rows_mentioning([GRACE["wa_id"], GRACE["name"], *GRACE["texts"]])
    grace_files = stored_files() - set(ada["file_names"])
    assert rows_mentioning(ADA_NEEDLES) and set(ada["file_names"]) <= stored_files()

    erase_subject(subject=find_subject(identifier=ADA["phone"]), actor_label="dpo")

    assert rows_mentioning(ADA_NEEDLES) == []
    assert stored_files() == grace_files and grace_files
    assert rows_mentioning([GRACE["wa_id"], GRACE["name"], *GRACE["texts"]]) == grace_before
    assert ClientProfile.objects.get().external_id == GRACE["bsuid"]
    assert Message.objects.filter(conversation__profile__external_id=GRACE["bsuid"]).count() == 4
    assert Attachment.objects.get().caption == "Grace's own photo"


def test_remote_copies_are_deleted_in_order_items_before_their_conversation(client, graph_ok, twilio_ok, processors):
    build_ada(client)
    twilio_sids = set(Message.objects.filter(provider="twilio").values_list("provider_message_id", flat=True))

    record = erase_subject(subject=find_subject(identifier=ADA["phone"]))

    openai = processors["openai"]
    assert openai.calls == [
        ("GET", "/v1/conversations/conv_ada/items"),
        ("DELETE", "/v1/conversations/conv_ada/items/msg_ada_1"),
        ("DELETE", "/v1/conversations/conv_ada/items/msg_ada_2"),
        ("DELETE", "/v1/conversations/conv_ada/items/msg_ada_3"),
        ("DELETE", "/v1/conversations/conv_ada"),
        ("DELETE", "/v1/responses/resp_ada_1"),
    ]
    assert openai.conversations == {} and openai.responses == set()
    assert set(processors["twilio"]["deleted"]) == twilio_sids and len(twilio_sids) == 2  # inbound and reply
    deletions = list(record.remote_deletions.values_list("kind", "status"))
    assert deletions == [
        ("openai_conversation_item", "deleted"),
        ("openai_conversation_item", "deleted"),
        ("openai_conversation_item", "deleted"),
        ("openai_conversation", "deleted"),
        ("openai_response", "deleted"),
        ("twilio_message", "deleted"),
        ("twilio_message", "deleted"),
        ("meta_media", "deleted"),
        ("meta_media", "deleted"),
    ]
    # Meta: the media objects of her voice note and photo (Meta keeps no message store).
    assert sorted(processors["graph"]) == ["1000000000000101", "1000000000000102"]


def test_a_twilio_20009_is_retried_by_the_task_until_the_message_is_deleted(client, twilio_ok, processors):
    post_twilio(client, twilio_params("whatsapp_text"))
    inbound_sid = twilio_params("whatsapp_text")["MessageSid"]
    processors["twilio"]["in_flight"][inbound_sid] = 2

    record = erase_subject(subject=find_subject(identifier="whatsapp:+15551234567"))

    deletion = record.remote_deletions.get(remote_id=inbound_sid)
    assert (deletion.status, deletion.attempts) == ("deleted", 3)
    assert processors["twilio"]["deleted"].count(inbound_sid) == 1
    assert not RemoteDeletion.objects.filter(status="pending").exists()


def test_a_deletion_refused_for_now_stays_pending_for_the_sweep(client, twilio_ok, processors, monkeypatch):
    post_twilio(client, twilio_params("whatsapp_text"))
    sid = twilio_params("whatsapp_text")["MessageSid"]
    processors["twilio"]["in_flight"][sid] = 10_000
    monkeypatch.setattr(delete_remote_copies, "max_retries", 2)
    record = erase_subject(subject=find_subject(identifier=ADA["phone"]))

    deletion = record.remote_deletions.get(remote_id=sid)
    assert deletion.status == "pending" and "20009" in deletion.last_error
    processors["twilio"]["in_flight"][sid] = 0
    assert retry_pending_remote_deletions.delay().result == 0  # what beat runs
    assert record.remote_deletions.get(remote_id=sid).status == "deleted"


def test_copies_already_gone_at_the_processor_are_recorded_as_such(
    client, graph_ok, openai_store, twilio_deletions, graph_deletions
):
    build_ada(client, with_twilio=False)  # the fake OpenAI store knows neither conv_ada nor resp_ada_1

    record = erase_subject(subject=find_subject(identifier=ADA["bsuid"]))

    assert set(record.remote_deletions.values_list("kind", "status")) == {
        ("openai_conversation", "already_gone"),
        ("openai_response", "already_gone"),
        ("meta_media", "deleted"),
    }


def test_media_the_app_uploaded_to_meta_is_deleted_through_graph(graph_deletions):
    record = ErasureRecord.objects.create(identifier_kind="phone", identifier_hash="0" * 64, counts={})
    RemoteDeletion.objects.create(erasure=record, processor="meta", kind="meta_media", remote_id="1000000000000555")

    assert run_remote_deletions(erasure_id=record.pk) == 0

    assert graph_deletions == ["1000000000000555"]
    assert record.remote_deletions.get().status == "deleted"


def test_the_erasure_record_holds_no_phone_number_name_or_message_text(client, graph_ok, twilio_ok, processors):
    build_ada(client)

    record = erase_subject(subject=find_subject(identifier=ADA["phone"]), actor_label="dpo")

    rows = [record, *record.remote_deletions.all(), *AuditEntry.objects.filter(action="gdpr.erase")]
    dumped = json.dumps(
        [{f.attname: getattr(r, f.attname) for f in r._meta.concrete_fields} for r in rows], default=str
    )
    for needle in [*ADA_NEEDLES, ADA["name"], "Ada"]:
        assert needle not in dumped
    assert record.identifier_hash == hash_identifier(kind="phone", normalized=ADA["phone"])
    assert record.performed_by_label == "dpo"
    assert record.counts == {
        "contacts": 1,
        "profiles": 2,
        "conversations": 2,
        "messages": 8,
        "attachments": 2,
        "files": 2,
        "audit_entries": 0,
        "tool_calls": 1,
        "webhook_captures": 0,
        "admin_log_entries": 0,
        "remote_deletions": {"openai_conversation": 1, "openai_response": 1, "twilio_message": 2, "meta_media": 2},
    }


# Real commits: another thread (the fake OpenAI server's) uses its own database connection.
@pytest.mark.django_db(transaction=True)
def test_erase_during_an_in_flight_reply_sends_nothing_and_recreates_nothing(
    client, fake_providers, fake_openai, caplog
):
    def erase_while_the_model_thinks(request_body):
        worker = threading.Thread(target=_erase_in_another_connection, args=(ADA["bsuid"],))
        worker.start()
        worker.join()

    fake_openai.during_request = erase_while_the_model_thinks

    post_meta(client, meta_body("text"))

    assert len(fake_openai.requests) == 1  # the model was asked...
    assert fake_providers.sent(GRAPH_MESSAGES) == []  # ...but nothing went out
    assert not ClientProfile.objects.exists()
    assert not Conversation.objects.exists() and not Message.objects.exists()
    assert ErasureRecord.objects.count() == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []  # the task ended quietly


def _erase_in_another_connection(identifier: str) -> None:
    try:
        erase_subject(subject=find_subject(identifier=identifier))
    finally:
        connections.close_all()


def test_a_send_queued_before_the_erase_sends_nothing(client, fake_providers, fake_openai, caplog):
    # Graph asks us to wait: the reply's send goes to the queue with its backoff.
    rate_limited = {"error": {"message": "Rate limit hit", "type": "OAuthException", "code": 130429}}
    fake_providers.add(responses.POST, GRAPH_MESSAGES, json=rate_limited, status=400, headers={"Retry-After": "30"})
    celery_app.conf.task_always_eager = False  # tasks wait in the (in-memory) queue
    try:
        post_meta(client, meta_body("text"))
        record_inbound_message(ProcessedMessage.objects.get().pk)  # a worker takes the delivery
        reply_to_message(message_id=Message.objects.get().pk)
    finally:
        celery_app.conf.task_always_eager = True
    reply = Message.objects.get(author=Message.Author.BOT)
    assert (reply.status, reply.error_code) == (Message.Status.PENDING, "130429")

    erase_subject(subject=find_subject(identifier=ADA["bsuid"]))
    send_outbound_message.delay(reply.pk)  # the queued send finally runs

    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert len(fake_providers.sent(GRAPH_MESSAGES)) == 1  # the attempt Graph refused, none after the erase
    assert not Message.objects.exists()


# Real commits: the duplicate delivery's INSERT fails on its own (autocommit) as in production;
# inside a test transaction that IntegrityError would poison the whole test.
@pytest.mark.django_db(transaction=True)
def test_a_retried_webhook_after_erase_creates_nothing(client, graph_ok, fake_openai):
    post_meta(client, meta_body("text"))
    erase_subject(subject=find_subject(identifier=ADA["phone"]))
    model_calls, sends = len(fake_openai.requests), len(graph_ok.sent(GRAPH_MESSAGES))

    response = post_meta(client, meta_body("text"))  # Meta retries the same delivery

    assert response.status_code == 200
    assert not ClientProfile.objects.exists() and not Message.objects.exists()
    assert (len(fake_openai.requests), len(graph_ok.sent(GRAPH_MESSAGES))) == (model_calls, sends)
    assert ProcessedMessage.objects.count() == 1


# Real commits: the duplicate delivery's INSERT fails on its own (autocommit) as in production;
# inside a test transaction that IntegrityError would poison the whole test.
@pytest.mark.django_db(transaction=True)
def test_twilio_retried_webhook_after_erase_creates_nothing(client, twilio_ok):
    post_twilio(client, twilio_params("whatsapp_text"))
    erase_subject(subject=find_subject(identifier="whatsapp:+15551234567"))

    post_twilio(client, twilio_params("whatsapp_text"))

    assert not Message.objects.exists()
    assert len(twilio_ok.sent(TWILIO_MESSAGES)) == 1


def test_gdpr_erase_dry_run_lists_what_would_go_and_changes_nothing(client, graph_ok, processors):
    build_ada(client, with_twilio=False)
    out = io.StringIO()

    call_command("gdpr_erase", ADA["bsuid"], "--dry-run", stdout=out)

    printed = out.getvalue()
    assert "messages           6" in printed and "Dry run" in printed
    assert f"profile #{ClientProfile.objects.get().pk}: Meta Cloud API {ADA['bsuid']}" in printed  # who was found
    assert "openai_conversation        conv_ada" in printed and "meta_media                 1000000000000101" in printed
    assert ClientProfile.objects.count() == 1 and not ErasureRecord.objects.exists()
    assert processors["openai"].calls == []


def test_gdpr_erase_without_yes_refuses_when_no_one_can_confirm(client, graph_ok, processors):
    build_ada(client, with_twilio=False)

    with pytest.raises(CommandError, match="--yes"):
        call_command("gdpr_erase", ADA["bsuid"], stdout=io.StringIO())

    assert ClientProfile.objects.count() == 1


def test_gdpr_erase_with_yes_erases_and_reports(client, graph_ok, processors):
    build_ada(client, with_twilio=False)
    out = io.StringIO()

    call_command("gdpr_erase", ADA["bsuid"], "--yes", "--operator", "dpo", stdout=out)

    assert not ClientProfile.objects.exists()
    record = ErasureRecord.objects.get()
    assert record.performed_by_label == "dpo"
    assert f"Erasure record #{record.pk}" in out.getvalue()


def test_gdpr_erase_of_an_unknown_subject_fails_and_erases_nothing(client, graph_ok):
    post_meta(client, meta_body("text"))

    with pytest.raises(CommandError, match="No contact matches"):
        call_command("gdpr_erase", "+15550000000", "--yes")

    assert ClientProfile.objects.count() == 1 and not ErasureRecord.objects.exists()


def test_plan_erasure_counts_without_deleting(client, graph_ok, twilio_ok):
    build_ada(client)

    plan = plan_erasure(subject=find_subject(identifier=ADA["phone"]))

    assert plan.counts["messages"] == 8 and plan.counts["files"] == 2
    assert Message.objects.count() == 8


def test_webhook_captures_of_the_subject_are_erased_and_others_kept(client, graph_ok, twilio_ok, settings):
    from conversations.models import CapturedWebhook

    settings.WEBHOOK_CAPTURE_HOURS = 24
    post_meta(client, meta_body("text"))  # +1 555 123 4567
    post_meta(client, meta_body("text_username_no_phone"))  # another customer
    post_twilio(client, twilio_params("sms_inbound"))  # +1 555 123 4567 again, form-encoded
    assert CapturedWebhook.objects.count() == 3

    record = erase_subject(subject=find_subject(identifier="+15551234567"))

    assert record.counts["webhook_captures"] == 2
    [kept] = CapturedWebhook.objects.all()
    assert b"US.1000000000000000003" in bytes(kept.body)


def test_the_admin_history_of_the_subjects_objects_is_erased_and_others_kept(client, graph_ok, staff_user):
    build_ada(client, with_twilio=False)
    build_grace(client)
    request = RequestFactory().post("/admin/")
    request.user = staff_user
    profile_admin = admin.site._registry[ClientProfile]
    ada, grace = (ClientProfile.objects.get(external_id=p["bsuid"]) for p in (ADA, GRACE))
    Contact.objects.filter(pk=ada.contact_id).update(first_name="Ada", last_name="Lovelace")
    ada.refresh_from_db()
    profile_admin.log_change(request, ada, [{"changed": {"fields": ["first_name", "last_name"]}}])
    ada_conversation = Conversation.objects.get(profile=ada)
    admin.site._registry[Conversation].log_change(request, ada_conversation, "Taken over")
    profile_admin.log_change(request, grace, [{"changed": {"fields": ["company"]}}])
    assert LogEntry.objects.filter(object_repr="Ada Lovelace").exists()

    plan = plan_erasure(subject=find_subject(identifier=ADA["phone"]))
    record = erase_subject(subject=plan.subject)

    assert plan.counts["admin_log_entries"] == 2 and record.counts["admin_log_entries"] == 2
    [kept] = LogEntry.objects.all()
    assert (kept.object_id, kept.object_repr) == (str(grace.pk), str(grace))


def test_captures_naming_the_subject_in_any_spelling_are_erased(client, graph_ok, twilio_ok, settings):
    settings.WEBHOOK_CAPTURE_HOURS = 24
    post_meta(client, meta_body("text"))
    ada = ClientProfile.objects.get(external_id=ADA["bsuid"])
    Contact.objects.filter(pk=ada.contact_id).update(email="ada@example.com")
    # Unsigned or not, captures keep what came: her email URL-encoded in a form, her number as %2B….
    client.post(
        "/webhooks/twilio/", "Body=write+to+ada%40example.com", content_type="application/x-www-form-urlencoded"
    )
    client.post("/webhooks/twilio/", "To=%2B15551234567&Body=hi", content_type="application/x-www-form-urlencoded")
    post_meta(client, meta_body_as("text", GRACE, suffix="GRACE"))
    assert CapturedWebhook.objects.count() == 4

    plan = plan_erasure(subject=find_subject(identifier=ADA["bsuid"]))
    erase_subject(subject=plan.subject)

    assert plan.counts["webhook_captures"] == 3
    [kept] = CapturedWebhook.objects.all()
    assert GRACE["bsuid"].encode() in bytes(kept.body)


# Real commits: the duplicate delivery's INSERT fails on its own (autocommit) as in production.
@pytest.mark.django_db(transaction=True)
def test_late_deliveries_naming_an_erased_subject_are_not_captured(client, graph_ok, twilio_ok, settings):
    settings.WEBHOOK_CAPTURE_HOURS = 24
    post_meta(client, meta_body("text"))
    post_twilio(client, twilio_params("whatsapp_text"))
    erase_subject(subject=find_subject(identifier=ADA["phone"]))
    assert not CapturedWebhook.objects.exists()

    post_meta(client, meta_body("text"))  # Meta retries the delivery
    post_meta(client, meta_body("status_delivered"))  # a status of her erased reply
    post_twilio(client, twilio_params("status_delivered"), path="/webhooks/twilio/status/")  # to her number
    post_twilio(client, twilio_params("sms_inbound"))  # from +15551234567: another spelling
    post_meta(client, meta_body_as("text", GRACE, suffix="GRACE"))  # someone else

    [kept] = CapturedWebhook.objects.all()
    assert GRACE["bsuid"].encode() in bytes(kept.body)
    assert ErasedIdentifier.objects.count() == 2  # her BSUID and +15551234567 (whatsapp:+… is the same number)


# Real commits: the erasure runs in another thread (its own connection) while the model answers.
@pytest.mark.django_db(transaction=True)
def test_the_response_openai_stored_for_a_reply_in_flight_is_deleted_quietly(
    client, fake_providers, fake_openai, openai_store, settings, caplog
):
    settings.OPENAI_STORE = True
    openai_store.responses.add("resp_test")  # what the fake model answers with
    fake_openai.extract(first_name="Ada", email="ada@example.com")  # and it records her details

    def erase_while_the_model_thinks(request_body):
        fake_openai.during_request = None
        worker = threading.Thread(target=_erase_in_another_connection, args=(ADA["bsuid"],))
        worker.start()
        worker.join()

    fake_openai.during_request = erase_while_the_model_thinks

    post_meta(client, meta_body("text"))

    assert len(fake_openai.requests) == 2  # the call that recorded her details, then the answer
    assert fake_providers.sent(GRAPH_MESSAGES) == []
    assert not ClientProfile.objects.exists() and not ModelUsage.objects.exists()
    assert ("DELETE", "/v1/responses/resp_test") in openai_store.calls
    orphan = RemoteDeletion.objects.get(kind="openai_response")
    assert (orphan.origin, orphan.status, orphan.erasure) == ("orphan", "deleted", None)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# Real commits: the erasure runs in another thread (its own connection) during the send.
@pytest.mark.django_db(transaction=True)
def test_a_twilio_message_sent_while_its_row_is_erased_is_deleted_at_twilio(
    client, fake_providers, fake_openai, twilio_deletions, caplog
):
    def accept_after_the_erasure(request):
        worker = threading.Thread(target=_erase_in_another_connection, args=("whatsapp:+15551234567",))
        worker.start()
        worker.join()
        return 201, {}, json.dumps({"sid": "SM" + "7" * 32, "status": "queued"})

    fake_providers.add_callback(responses.POST, TWILIO_MESSAGES, callback=accept_after_the_erasure)

    post_twilio(client, twilio_params("whatsapp_text"))

    assert not Message.objects.exists()
    assert twilio_deletions["deleted"][-1] == "SM" + "7" * 32
    orphan = RemoteDeletion.objects.get(remote_id="SM" + "7" * 32)
    assert (orphan.origin, orphan.status) == ("orphan", "deleted")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_gdpr_erase_lists_every_remote_copy_done_and_waiting(client, graph_ok, twilio_ok, processors):
    build_ada(client)
    waiting_sid = twilio_params("whatsapp_text")["MessageSid"]
    processors["twilio"]["in_flight"][waiting_sid] = 10_000
    delete_remote_copies.max_retries = 1
    out = io.StringIO()
    try:
        call_command("gdpr_erase", ADA["phone"], "--yes", stdout=out)
    finally:
        delete_remote_copies.max_retries = 100

    printed = out.getvalue()
    assert "Copies at processors: 8 done, 1 waiting." in printed
    assert "Twilio message (and its media)" in printed and "20009" in printed


# Real commits: the erasure runs in another thread (its own connection) during the download.
@pytest.mark.django_db(transaction=True)
def test_a_file_downloaded_while_its_person_is_erased_is_not_left_in_storage(
    client, fake_providers, fake_openai, graph_deletions, caplog
):
    media_id = MEDIA_IDS["image"]
    lookup = {"messaging_product": "whatsapp", "url": f"{CDN_META}?mid={media_id}", "mime_type": "image/jpeg"}
    fake_providers.add(responses.GET, f"{GRAPH_URL}/v25.0/{media_id}", json={**lookup, "id": media_id})

    def cdn_answers_after_the_erasure(request):
        worker = threading.Thread(target=_erase_in_another_connection, args=(ADA["bsuid"],))
        worker.start()
        worker.join()
        return 200, {"Content-Type": "image/jpeg"}, jpeg()

    fake_providers.add_callback(responses.GET, CDN_META, callback=cdn_answers_after_the_erasure)

    post_meta(client, meta_body("image"))

    assert ErasureRecord.objects.count() == 1 and not Attachment.objects.exists()
    assert stored_files() == set()
    assert graph_deletions == [media_id]  # and Meta's copy is deleted
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.django_db(transaction=True)
def test_the_response_stored_for_an_agent_that_handed_over_is_deleted(
    client, graph_ok, fake_openai, openai_store, settings
):
    """No reply row names it (the specialist's answer is the reply), so nothing could erase it later."""
    from agents.models import Agent

    settings.OPENAI_STORE = True
    billing = Agent.objects.create(name="billing", instructions="BILLING RULES.")
    Agent.objects.create(name="triage", instructions="TRIAGE RULES.", is_entry=True).handoffs.set([billing])
    openai_store.responses.update({"resp_handover", "resp_test"})
    fake_openai.call_tool("transfer_to_billing", {}, call_id="call_t")
    fake_openai.queue[-1][1]["id"] = "resp_handover"
    fake_openai.answer("Billing here.")

    post_meta(client, meta_body("text"))

    assert Message.objects.get(author=Message.Author.BOT).openai_response_id == "resp_test"
    assert ("DELETE", "/v1/responses/resp_handover") in openai_store.calls
    assert ("DELETE", "/v1/responses/resp_test") not in openai_store.calls
    orphan = RemoteDeletion.objects.get(remote_id="resp_handover")
    assert (orphan.origin, orphan.status) == ("orphan", "deleted")


def test_an_erasure_removes_the_private_notes_staff_wrote_about_the_person(client, graph_ok, staff_user):
    from conversations.services.staff import add_private_note

    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    add_private_note(conversation_id=conversation.pk, user=staff_user, text="Gave the secret code 7731")

    erase_subject(subject=find_subject(identifier="+15551234567"), actor_label="dpo")

    assert rows_mentioning(["secret code 7731"]) == []
    assert not Message.objects.filter(author=Message.Author.PRIVATE_NOTE).exists()
    assert AuditEntry.objects.filter(action="conversation.private_note").exists() is False


def test_the_capture_search_finds_every_spelling_and_reads_only_the_captures_that_may_match(
    client, graph_ok, settings, monkeypatch
):
    """The database narrows the captures (SQLite and PostgreSQL alike), Python confirms: every
    spelling the scan found is still found, and captures naming no one of hers are never read."""
    post_meta(client, meta_body("text"))  # +1 555 123 4567, US.1000000000000000001
    ada = ClientProfile.objects.get(external_id=ADA["bsuid"])
    Contact.objects.filter(pk=ada.contact_id).update(email="ada+shop@example.com")
    hers = [
        ("/webhooks/meta/", b'{"from": "15551234567"}'),  # JSON, as Meta writes it
        ("/webhooks/twilio/", b"From=whatsapp%3A%2B15551234567&Body=hi"),  # form-encoded
        ("/webhooks/twilio/", b"Body=ADA%2bSHOP%40EXAMPLE.COM"),  # lower-case escapes, upper case
        ("/webhooks/twilio/", b"Body=ada%2Bshop@example.com"),  # half encoded
        ("/webhooks/twilio/", b"Body=ada%2Bshop%40%65xample.com"),  # a letter escaped for nothing
        ("/webhooks/twilio/?From=%2B15551234567", b""),  # in the query string only
        ("/webhooks/meta/", b"\xff\x00 garbage naming US.1000000000000000001"),  # not UTF-8, a NUL
    ]
    others = [
        ("/webhooks/meta/", b'{"from": "15557654321"}'),
        ("/webhooks/twilio/", b"Body=write+to+grace%40example.org"),
        ("/webhooks/meta/", b"\xff\xfe garbage"),
    ]
    CapturedWebhook.objects.all().delete()
    for path, body in hers + others:
        CapturedWebhook.objects.create(provider="meta", path=path, body=body)
    read = []
    from_db = CapturedWebhook.from_db.__func__
    monkeypatch.setattr(CapturedWebhook, "from_db", classmethod(lambda *args: read.append(1) or from_db(*args)))

    found = list_subject_captures(find_subject(identifier=ADA["bsuid"]))

    assert sorted((capture.path, bytes(capture.body)) for capture in found) == sorted(hers)
    assert len(read) == len(hers)
