"""The data officer's audit, as a test: two people write on every channel with canary strings
(Meta, Twilio WhatsApp, SMS, web chat, the simulator), with media, webhook captures on, OpenAI
storage on, admin edits and a staff reply; one is erased while a reply to her is in flight, and
late deliveries follow. Then every column of every table and every file of the media folder is
searched: nothing of hers is left, all of the other person's data is, and every copy at a
processor that had to go was asked to go (measured at the fake servers).

Runs on SQLite, and on PostgreSQL with DATABASE_URL set.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.core.files.base import ContentFile
from django.db import connection, connections
from django.test import RequestFactory

from conversations.models import Attachment, Conversation, Message, MessagePart, ProcessedMessage
from conversations.providers import simulator
from conversations.services.staff import send_staff_message, take_over_conversation
from conversations.services.webchat import receive_webchat_message
from conversations.tests.helpers import meta_body, openai_response, post_meta, post_twilio, twilio_params
from gdpr.erasure import erase_subject
from gdpr.models import ErasedIdentifier, ErasureRecord, RemoteDeletion
from gdpr.subjects import find_subject, hash_identifier
from gdpr.traces import canonical_identifier
from profiles.models import ClientProfile, Contact

from .builders import wamid_phone_part

# Real commits: the erasure runs in another thread (its own connection) while the model answers.
pytestmark = pytest.mark.django_db(transaction=True)

ADA = {
    "key": "ADA",
    "phone": "+15551234567",
    "wa_id": "15551234567",
    "bsuid": "US.1000000000000000001",
    "name": "Ada Lovelace",
    "email": "ada.canary@example.com",
    "visitor": "wv" + "a" * 30,
    "sim": "SIM.adacanary01",
    "media": "9001",
}
GRACE = {
    "key": "GRACE",
    "phone": "+15557654321",
    "wa_id": "15557654321",
    "bsuid": "US.1000000000000000777",
    "name": "Grace Hopper",
    "email": "grace.canary@example.com",
    "visitor": "wv" + "g" * 30,
    "sim": "SIM.gracecanary1",
    "media": "9002",
}
# Who is erased, and by what. One more erased identity of the same person is one more line.
ERASURES = [
    ("phone", ADA["phone"]),  # Meta, Twilio WhatsApp, SMS and the simulator: every profile with her number
    ("email", ADA["email"]),  # and by her email: her web chat contact (a visitor has no number)
]


def needles(person: dict) -> list[str]:
    """What must not survive an erasure of `person`: canaries, number, ids, email, name."""
    return [
        f"{person['key']}CANARY",
        person["wa_id"][1:],  # the number with or without +, in `whatsapp:+…`, URL-encoded or not
        wamid_phone_part(person["wa_id"]),  # the number inside Meta's message ids
        person["bsuid"],
        person["email"].split("@")[0],  # also URL-encoded (%40)
        person["name"].split()[1],
        person["visitor"],
        person["sim"],
    ]


# --- What the processors keep, and every DELETE they receive.


class Processors:
    def __init__(self, fake_openai, openai_store, twilio_deletions, graph_deletions) -> None:
        self.fake_openai, self.openai, self.twilio, self.graph = (
            fake_openai,
            openai_store,
            twilio_deletions,
            graph_deletions,
        )
        self.numbers = iter(range(1, 1000))

    def answer(self, person: dict, text: str = "", *, extract: dict | None = None) -> None:
        """The model's next answer, stored at OpenAI under an id of its own (OPENAI_STORE)."""
        if extract is not None:
            body = openai_response("")
            body["output"] = [
                {
                    "type": "function_call",
                    "id": "fc_details",
                    "call_id": "call_details",
                    "name": "save_customer_details",
                    "arguments": json.dumps(
                        {"first_name": None, "last_name": None, "company": None, "email": None, **extract}
                        | {"declined": False}
                    ),
                }
            ]
            self._queue(body)
        self._queue(openai_response(text or f"{person['key']}CANARY-ANSWER-{uuid.uuid4().hex[:6]}"))

    def _queue(self, body: dict) -> None:
        body["id"] = f"resp_{next(self.numbers):04d}"
        self.openai.responses.add(body["id"])
        self.fake_openai.queue.append((200, body, {}))

    def deleted(self) -> set[tuple[str, str]]:
        issued = set()
        for method, path in self.openai.calls:
            if method != "DELETE":
                continue
            parts = path.removeprefix("/v1/").split("/")
            if parts[0] == "responses":
                issued.add(("openai_response", parts[1]))
            elif len(parts) == 4:
                issued.add(("openai_conversation_item", parts[3]))
            else:
                issued.add(("openai_conversation", parts[1]))
        issued |= {("twilio_message", sid) for sid in self.twilio["deleted"]}
        issued |= {("meta_media", media_id) for media_id in self.graph}
        return issued


@pytest.fixture
def threaded_httpserver(httpserver):
    """The fake OpenAI serves the erasure's deletions while it is still answering the model call."""
    httpserver.stop()
    httpserver.threaded = True
    httpserver.start()
    yield httpserver
    httpserver.stop()
    httpserver.threaded = False
    httpserver.start()


@pytest.fixture
def processors(
    threaded_httpserver, fake_openai, openai_store, twilio_deletions, graph_deletions, graph_ok, twilio_ok, settings
):
    settings.OPENAI_STORE = True
    settings.WEBHOOK_CAPTURE_HOURS = 24
    return Processors(fake_openai, openai_store, twilio_deletions, graph_deletions)


# --- One person writing on every channel.


def meta_message(person: dict, kind: str, wamid: str, **content) -> bytes:
    body = json.loads(meta_body(kind))
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0].update(wa_id=person["wa_id"], user_id=person["bsuid"], profile={"name": person["name"]})
    message = value["messages"][0]
    message.update({"id": wamid, "from": person["wa_id"], "from_user_id": person["bsuid"]})
    message[message["type"]].update(content)
    return json.dumps(body).encode()


def twilio_message(person: dict, fixture: str, text: str, sid: str) -> dict[str, str]:
    params = twilio_params(fixture)
    address = f"whatsapp:{person['phone']}" if params["From"].startswith("whatsapp:") else person["phone"]
    params.update(From=address, Body=text, MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)
    if "WaId" in params:
        params.update(WaId=person["wa_id"], ProfileName=person["name"])
        context = {"ProfileName": person["name"], "WaId": person["wa_id"]}
        params["ChannelMetadata"] = json.dumps({"type": "whatsapp", "data": {"context": context}})
    return params


def wamid(person: dict, number: int) -> str:
    """A message id as Meta makes them: the sender's number inside, base64-encoded."""
    return f"wamid.{wamid_phone_part(person['wa_id'])}{person['key']}{number}"


def twilio_sid(person: dict, number: int) -> str:
    key = person["key"].lower()
    return f"SM{key}{number:0>{32 - len(key)}}"


def write_on_every_channel(client, processors: Processors, person: dict, staff) -> None:
    key = person["key"]
    processors.fake_openai.queue.clear()  # answers a call did not take (no model call for a photo)
    # Meta: a text (the model records her name and email), and a photo with a caption.
    first, last = person["name"].split()
    processors.answer(person, extract={"first_name": first, "last_name": last, "email": person["email"]})
    post_meta(client, meta_message(person, "text", wamid(person, 1), body=f"{key}CANARY-META-TEXT {person['email']}"))
    post_meta(
        client, meta_message(person, "image", wamid(person, 2), id=person["media"], caption=f"{key}CANARY-CAPTION")
    )
    photo = Attachment.objects.get(message__provider_message_id=wamid(person, 2))
    photo.file.save("photo.jpg", ContentFile(f"{key}CANARY-PHOTO-BYTES".encode()), save=False)
    Attachment.objects.filter(pk=photo.pk).update(file=photo.file.name, status=Attachment.Status.STORED)
    # Twilio WhatsApp and SMS.
    processors.answer(person)
    post_twilio(client, twilio_message(person, "whatsapp_text", f"{key}CANARY-TWILIO-WA", twilio_sid(person, 1)))
    processors.answer(person)
    post_twilio(client, twilio_message(person, "sms_inbound", f"{key}CANARY-SMS", twilio_sid(person, 2)))
    # The web chat: she gives her email there too.
    processors.answer(person, extract={"email": person["email"], "last_name": last})
    receive_webchat_message(
        visitor_id=person["visitor"], client_message_id="c1", text=f"{key}CANARY-WEBCHAT I am {person['email']}"
    )
    # The simulator, with the number she types there.
    processors.answer(person)
    body = simulator.build_message_body(
        message_id=simulator.new_message_id(),
        customer_id=person["sim"],
        phone_number=person["phone"],
        name=person["name"],
        kind="text",
        content={"body": f"{key}CANARY-SIMULATOR"},
    )
    post_meta(client, body)
    # OpenAI's server-side conversation of her Meta conversation, with its items.
    meta = Conversation.objects.get(profile__external_id=person["bsuid"])
    Conversation.objects.filter(pk=meta.pk).update(openai_conversation_id=f"conv_{key.lower()}")
    processors.openai.conversations[f"conv_{key.lower()}"] = [f"item_{key.lower()}_1", f"item_{key.lower()}_2"]
    # Staff: an edit in the admin (its history repeats her name) and a reply by hand on Twilio.
    profile = ClientProfile.objects.get(external_id=person["bsuid"])
    request = RequestFactory().post("/admin/")
    request.user = staff
    admin.site._registry[ClientProfile].log_change(request, profile, [{"changed": {"fields": ["first_name"]}}])
    twilio_conversation = Conversation.objects.get(profile__external_id=f"whatsapp:{person['phone']}")
    take_over_conversation(conversation_id=twilio_conversation.pk, user=staff)
    send_staff_message(conversation_id=twilio_conversation.pk, user=staff, text=f"{key}CANARY-STAFF-REPLY")


# --- The dump.


def dump_database() -> dict[str, str]:
    """Every value of every column of every table (introspected: also tables without a model,
    django_admin_log, sessions), as text, per table."""
    tables = connection.introspection.table_names()
    assert {model._meta.db_table for model in apps.get_models()} <= set(tables)
    dump = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            dump[table] = "\n".join(_as_text(value) for row in cursor.fetchall() for value in row if value is not None)
    return dump


def _as_text(value) -> str:
    if isinstance(value, memoryview | bytes):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict | list):  # jsonb on PostgreSQL
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def dump_media(root: Path) -> str:
    if not root.exists():
        return ""
    return "\n".join(
        f"{path.relative_to(root)}\n{path.read_bytes().decode('utf-8', errors='replace')}"
        for path in sorted(root.rglob("*"))
        if path.is_file()
    )


def occurrences(dump: dict[str, str], media: str, words: list[str]) -> dict[str, int]:
    found = {}
    for table, text in [*dump.items(), ("<media>", media)]:
        for word in words:
            if count := text.lower().count(word.lower()):
                found[f"{table}: {word}"] = count
    return found


# --- The scenario.


def test_after_erasure_no_table_or_file_holds_anything_of_the_subject_and_every_remote_copy_is_deleted(
    client, processors, fake_openai, staff_user, media_root, caplog
):
    for person in (ADA, GRACE):
        write_on_every_channel(client, processors, person, staff_user)
    before = dump_database()
    grace_before = occurrences(before, dump_media(media_root), needles(GRACE))
    assert all(occurrences(before, dump_media(media_root), [word]) for word in needles(ADA))  # seeded everywhere
    assert LogEntry.objects.filter(object_repr__contains="Lovelace").exists()
    expected = remote_copies_of(ADA)

    # A reply to Ada is in flight (the model is answering) when she is erased.
    def erase_while_the_model_answers(request_body):
        fake_openai.during_request = None
        erasure = threading.Thread(target=erase_in_another_connection)
        erasure.start()
        erasure.join(timeout=60)

    issued_before = processors.deleted()  # discarded calls of the seeding replies, deleted already
    stored_before = set(processors.openai.responses)
    processors.fake_openai.queue.clear()
    processors.answer(ADA, extract={"company": "ADACANARY Engines Ltd"})
    in_flight = set(processors.openai.responses) - stored_before  # the extraction's call, then the answer's
    caplog.clear()
    fake_openai.during_request = erase_while_the_model_answers
    post_meta(client, meta_message(ADA, "text", wamid(ADA, 9), body="ADACANARY-IN-FLIGHT"))
    assert ErasureRecord.objects.count() == len(ERASURES)
    expected |= {("openai_response", response_id) for response_id in in_flight}

    # Late deliveries: Meta retries her last message, statuses of her erased messages arrive.
    post_meta(client, meta_message(ADA, "text", wamid(ADA, 9), body="ADACANARY-IN-FLIGHT"))
    status = json.loads(meta_body("status_delivered"))
    status["entry"][0]["changes"][0]["value"]["statuses"][0].update(id="wamid.OUT1", recipient_id=ADA["wa_id"])
    post_meta(client, json.dumps(status).encode())
    twilio_status = twilio_params("status_delivered")
    twilio_status.update(To=f"whatsapp:{ADA['phone']}", MessageSid="SM" + "9" * 32, SmsSid="SM" + "9" * 32)
    post_twilio(client, twilio_status, path="/webhooks/twilio/status/")

    after = dump_database()
    media_after = dump_media(media_root)
    assert occurrences(after, media_after, needles(ADA)) == {}
    assert occurrences(after, media_after, needles(GRACE)) == grace_before
    assert Contact.objects.filter(email=GRACE["email"]).exists()
    # Kept by design, and none of it readable: keyed hashes of what identified her, and SHA-256
    # dedup keys of provider message ids.
    assert ErasureRecord.objects.count() == len(ERASURES)
    kept = set(ErasedIdentifier.objects.values_list("identifier_hash", flat=True))
    for identifier in (ADA["phone"], ADA["bsuid"], ADA["email"], ADA["visitor"], ADA["sim"]):
        assert hash_identifier(kind="identifier", normalized=canonical_identifier(identifier)) in kept
    assert ProcessedMessage.objects.filter(provider_message_id=ProcessedMessage.key_for(wamid(ADA, 9))).exists()
    # The reply in flight ended quietly, and every copy at a processor that had to go went.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert processors.deleted() - issued_before == expected
    assert not RemoteDeletion.objects.exclude(status=RemoteDeletion.Status.DELETED).exists()


def remote_copies_of(person: dict) -> set[tuple[str, str]]:
    """What the processors hold of `person`, read from our rows before the erasure."""
    identities = [person["bsuid"], f"whatsapp:{person['phone']}", person["phone"], person["sim"], person["visitor"]]
    profiles = ClientProfile.objects.filter(external_id__in=identities)
    assert profiles.count() == len(identities)
    messages = Message.objects.filter(conversation__profile__in=profiles)
    copies = {
        ("openai_response", r)
        for r in messages.exclude(openai_response_id="").values_list("openai_response_id", flat=True)
    }
    twilio = messages.filter(provider="twilio")
    copies |= {("twilio_message", sid) for sid in twilio.values_list("provider_message_id", flat=True) if sid}
    parts = MessagePart.objects.filter(message__in=twilio).exclude(provider_message_id="")
    copies |= {("twilio_message", sid) for sid in parts.values_list("provider_message_id", flat=True)}
    copies.add(("meta_media", person["media"]))  # the photo on Meta (the simulator's never left us)
    key = person["key"].lower()
    copies.add(("openai_conversation", f"conv_{key}"))
    copies |= {("openai_conversation_item", f"item_{key}_{n}") for n in (1, 2)}
    return copies


def erase_in_another_connection() -> None:
    try:
        for kind, identifier in ERASURES:
            erase_subject(subject=find_subject(identifier=identifier, kind=kind), actor_label="dpo")
    finally:
        connections.close_all()
