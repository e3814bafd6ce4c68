"""The live inbox as a helpdesk, through its API: triage views and counts, filters, pages,
assign, resolve/reopen, snooze, labels, private notes, per-agent unread, search."""

from __future__ import annotations

import gc
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from accounts.roles import SUPERVISOR
from accounts.tests.helpers import log_in
from conversations.models import AuditEntry, CannedResponse, Channel, Conversation, Label, Message
from conversations.selectors import search
from conversations.tests.fakes import GRAPH_MESSAGES
from conversations.tests.helpers import meta_body, meta_text, post_meta
from profiles.models import Contact

from .backoffice_data import make_conversations

pytestmark = pytest.mark.django_db


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()]


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def supervisor_client(staff_user) -> Client:
    """Alice as a Supervisor too (assigning is theirs, issue 18), past her second factor."""
    staff_user.groups.add(Group.objects.get(name=SUPERVISOR))
    client = Client()
    log_in(client, staff_user)
    return client


@pytest.fixture
def conversation(client, graph_ok):
    post_meta(client, meta_body("text"))
    return Conversation.objects.get()


def test_assigning_to_a_colleague_puts_it_in_their_mine_view_not_in_mine(
    conversation, supervisor_client, staff_user, other_staff
):
    base = f"/api/conversations/{conversation.pk}"

    response = supervisor_client.post(
        f"{base}/assign/", {"assignee_id": other_staff.pk}, content_type="application/json"
    )

    assert response.status_code == 200
    assert (response.json()["mode"], response.json()["holder"]["name"]) == ("human", "Bob")
    assert ids(client_of(other_staff).get("/api/conversations/", {"view": "mine"})) == [conversation.pk]
    assert ids(supervisor_client.get("/api/conversations/", {"view": "mine"})) == []
    assert ids(supervisor_client.get("/api/conversations/", {"view": "unassigned"})) == []
    note = Message.objects.get(author=Message.Author.NOTE)
    assert note.staff_label == "Alice Staff assigned to Bob"
    entry = AuditEntry.objects.get(action="conversation.assigned")
    assert (entry.actor, entry.detail["assignee_id"]) == (staff_user, other_staff.pk)
    # Bob now holds it: he writes, Alice may not.
    sent = client_of(other_staff).post(f"{base}/send/", {"text": "Bob here"}, content_type="application/json")
    refused = supervisor_client.post(f"{base}/send/", {"text": "Alice here"}, content_type="application/json")
    assert (sent.status_code, refused.status_code) == (201, 409)


def test_a_conversation_cannot_be_assigned_to_someone_who_is_not_active_staff(
    conversation, supervisor_client, django_user_model
):
    customer = django_user_model.objects.create_user("carol", password="carol-password-1")
    gone = django_user_model.objects.create_user("dave", password="dave-password-1", is_staff=True, is_active=False)

    for user_id in (customer.pk, gone.pk, 999999):
        response = supervisor_client.post(
            f"/api/conversations/{conversation.pk}/assign/", {"assignee_id": user_id}, content_type="application/json"
        )
        assert (response.status_code, response.json()["code"]) == (409, "invalid_assignee")
    assert Conversation.objects.get().mode == Conversation.Mode.BOT


def test_a_resolved_conversation_leaves_the_open_views_and_a_new_customer_message_reopens_it(
    client, conversation, staff_client, staff_user
):
    post_meta(client, meta_text("human please", "wamid.h"))
    assert ids(staff_client.get("/api/conversations/", {"view": "needs_person"})) == [conversation.pk]

    resolved = staff_client.post(f"/api/conversations/{conversation.pk}/resolve/")

    assert resolved.json()["resolved_at"] is not None
    assert resolved.json()["needs_human"] is False
    assert ids(staff_client.get("/api/conversations/", {"view": "resolved"})) == [conversation.pk]
    for view in ("open", "needs_person", "unassigned"):
        assert ids(staff_client.get("/api/conversations/", {"view": view})) == []

    post_meta(client, meta_text("One more question", "wamid.again"))

    assert Conversation.objects.get().resolved_at is None
    assert ids(staff_client.get("/api/conversations/", {"view": "open"})) == [conversation.pk]
    assert [e.action for e in AuditEntry.objects.filter(action__startswith="conversation.resolved")] == [
        "conversation.resolved"
    ]


def test_staff_reopen_a_resolved_conversation(conversation, staff_client):
    staff_client.post(f"/api/conversations/{conversation.pk}/resolve/")

    reopened = staff_client.post(f"/api/conversations/{conversation.pk}/reopen/")

    assert reopened.json()["resolved_at"] is None
    assert ids(staff_client.get("/api/conversations/", {"view": "open"})) == [conversation.pk]


def test_a_snoozed_conversation_hides_until_its_time_or_the_customers_next_message(client, conversation, staff_client):
    until = timezone.now() + timedelta(hours=1)
    snooze = f"/api/conversations/{conversation.pk}/snooze/"

    response = staff_client.post(snooze, {"until": until.isoformat()}, content_type="application/json")

    assert response.status_code == 200
    assert ids(staff_client.get("/api/conversations/", {"view": "open"})) == []
    assert ids(staff_client.get("/api/conversations/", {"view": "snoozed"})) == [conversation.pk]
    Conversation.objects.update(snoozed_until=timezone.now() - timedelta(seconds=1))  # the time came
    assert ids(staff_client.get("/api/conversations/", {"view": "open"})) == [conversation.pk]

    staff_client.post(snooze, {"until": until.isoformat()}, content_type="application/json")
    post_meta(client, meta_text("Hello again", "wamid.wake"))
    assert Conversation.objects.get().snoozed_until is None


@pytest.mark.parametrize("until", ["2001-01-01T00:00:00Z", "2999-01-01T00:00:00Z"])
def test_a_snooze_in_the_past_or_too_far_ahead_is_refused(conversation, staff_client, until):
    response = staff_client.post(
        f"/api/conversations/{conversation.pk}/snooze/", {"until": until}, content_type="application/json"
    )

    assert (response.status_code, response.json()["code"]) == (409, "invalid_snooze")
    assert Conversation.objects.get().snoozed_until is None


def test_labels_are_set_shown_and_filtered_on(conversation, staff_client, staff_user):
    [other] = make_conversations(1, staff=staff_user)
    billing, urgent = Label.objects.create(name="billing"), Label.objects.create(name="urgent", color="#ff0000")

    response = staff_client.put(
        f"/api/conversations/{conversation.pk}/labels/",
        {"label_ids": [urgent.pk, billing.pk, 424242]},
        content_type="application/json",
    )

    assert [label["name"] for label in response.json()["labels"]] == ["billing", "urgent"]
    assert ids(staff_client.get("/api/conversations/", {"label": billing.pk})) == [conversation.pk]
    assert other.pk in ids(staff_client.get("/api/conversations/"))


def test_filters_by_channel_agent_and_date(staff_client, staff_user, other_staff):
    conversations = make_conversations(4, staff=staff_user)  # odd ones held by Alice
    Conversation.objects.filter(pk=conversations[0].pk).update(channel=Channel.TWILIO_SMS)
    Conversation.objects.filter(pk=conversations[3].pk).update(
        assigned_to=other_staff, updated_at=timezone.now() - timedelta(days=10)
    )
    last_week = (timezone.now() - timedelta(days=7)).date().isoformat()

    def listed(**params) -> set[int]:
        return set(ids(staff_client.get("/api/conversations/", params)))

    c0, c1, c2, c3 = (c.pk for c in conversations)
    assert listed(channel=Channel.TWILIO_SMS) == {c0}
    assert listed(agent="bot") == {c0, c2}
    assert listed(agent=str(staff_user.pk)) == {c1}
    assert listed(agent=str(other_staff.pk)) == {c3}
    assert listed(since=last_week) == {c0, c1, c2}
    assert listed(until=last_week) == {c3}
    assert staff_client.get("/api/conversations/", {"channel": "carrier_pigeon"}).status_code == 400
    assert staff_client.get("/api/conversations/", {"agent": "1 or 1=1"}).status_code == 400


def test_the_counts_of_every_view_in_one_answer(staff_client, staff_user):
    conversations = make_conversations(6, staff=staff_user)  # odd ones held; 0 and 3 need a person
    Conversation.objects.filter(pk=conversations[5].pk).update(resolved_at=timezone.now())
    Conversation.objects.filter(pk=conversations[4].pk).update(snoozed_until=timezone.now() + timedelta(hours=2))

    counts = staff_client.get("/api/conversations/counts/").json()

    assert counts == {
        "needs_person": 2,
        "mine": 2,
        "unassigned": 2,
        "open": 4,
        "snoozed": 1,
        "resolved": 1,
        "all": 6,
    }
    assert staff_client.get("/api/conversations/counts/", {"view": "mine", "agent": "bot"}).json()["all"] == 3


def test_pages_beyond_200_conversations_follow_each_other_without_gaps_or_repeats(staff_client, staff_user):
    make_conversations(250, staff=staff_user)
    same_time = timezone.now()
    Conversation.objects.update(updated_at=same_time)  # ties broken by id

    first = staff_client.get("/api/conversations/").json()
    last = first[-1]
    second = staff_client.get("/api/conversations/", {"before": last["updated_at"], "before_id": last["id"]}).json()

    assert (len(first), len(second)) == (200, 50)
    listed = [row["id"] for row in first + second]
    assert listed == sorted(Conversation.objects.values_list("pk", flat=True), reverse=True)


# Each request: session, user, whether a second factor is owed, the user's permissions (their own,
# their roles'). The list: the rows, their labels.
MAX_QUERIES_PER_REQUEST = 5
MAX_QUERIES_LIST = MAX_QUERIES_PER_REQUEST + 2


LIST_URLS = [
    "/api/conversations/",
    "/api/conversations/?view=mine&channel=meta_whatsapp&label=1",
    "/api/conversations/?view=open&before=2999-01-01T00:00:00Z&before_id=999999",
    "/api/conversations/counts/?view=needs_person",
]


@pytest.mark.parametrize("rows", [10, 300])
def test_the_list_and_counts_run_a_constant_number_of_queries(staff_user, django_assert_max_num_queries, rows):
    make_conversations(rows, staff=staff_user)
    Label.objects.create(name="billing")

    for url in LIST_URLS:  # the rows made once; each page asked by a client of its own
        client = Client()
        client.force_login(staff_user)
        with django_assert_max_num_queries(MAX_QUERIES_LIST, info=url):
            response = client.get(url)
        assert response.status_code == 200, url


@pytest.mark.parametrize("url", ["/api/conversations/", "/api/search/?q=Customer"])
def test_a_page_leaves_none_of_its_rows_to_the_cyclic_garbage_collector(staff_client, staff_user, url):
    """DRF's response, view and request refer to one another: a page's rows must go when the
    request ends, not with a later pass of the cyclic collector (whose full passes were the
    list's p99, bench/inbox.py). What a request leaves to the collector does not grow with the
    rows."""

    def left_to_the_collector() -> int:
        # Frozen (as conftest.py freezes what collection made), the objects made before the
        # request are out of the collector's sight, leftover garbage included: the collection
        # after it walks only what the request made, not the whole heap of a test process.
        gc.disable()
        gc.freeze()
        try:
            assert staff_client.get(url).status_code == 200
            return gc.collect()
        finally:
            gc.enable()

    make_conversations(5, staff=staff_user)
    few = left_to_the_collector()
    make_conversations(40, staff=staff_user, start=5)
    many = left_to_the_collector()

    assert many - few < 40, (few, many)


@pytest.mark.parametrize("messages", [3, 300])
def test_a_conversation_and_its_messages_run_a_constant_number_of_queries(
    staff_client, staff_user, django_assert_max_num_queries, messages
):
    [conversation] = make_conversations(1, staff=staff_user)
    Message.objects.bulk_create(
        Message(conversation=conversation, direction="in", author="customer", text=f"m{i}", status="handled")
        for i in range(messages)
    )

    with django_assert_max_num_queries(MAX_QUERIES_PER_REQUEST + 2):  # the row, its labels
        assert staff_client.get(f"/api/conversations/{conversation.pk}/").status_code == 200
    # The messages (staff users joined), their attachments, the bot replies' tool calls.
    with django_assert_max_num_queries(MAX_QUERIES_PER_REQUEST + 3):
        assert staff_client.get(f"/api/conversations/{conversation.pk}/messages/").status_code == 200


def test_unread_counts_are_per_agent(client, conversation, staff_client, other_staff):
    last = Message.objects.order_by("id").last().pk
    bob = client_of(other_staff)
    assert staff_client.get("/api/conversations/").json()[0]["unread_count"] == 1

    staff_client.post(
        f"/api/conversations/{conversation.pk}/read/", {"up_to_message_id": last}, content_type="application/json"
    )
    post_meta(client, meta_text("Are you there?", "wamid.there"))

    assert staff_client.get("/api/conversations/").json()[0]["unread_count"] == 1
    assert bob.get("/api/conversations/").json()[0]["unread_count"] == 2
    assert bob.get(f"/api/conversations/{conversation.pk}/").json()["unread_count"] == 2


def test_a_read_marker_never_moves_back(conversation, staff_client):
    last = Message.objects.order_by("id").last().pk
    read = f"/api/conversations/{conversation.pk}/read/"
    staff_client.post(read, {"up_to_message_id": last}, content_type="application/json")
    staff_client.post(read, {"up_to_message_id": 1}, content_type="application/json")

    assert staff_client.get("/api/conversations/").json()[0]["unread_count"] == 0


# Private notes: for colleagues only. Checked at the HTTP boundary: what the model was sent
# (the fake OpenAI server's requests), what the customer was sent (the fake Graph API).
SECRET = "Private: the customer is on our fraud watch list, code ZEBRA-42"


def test_a_private_note_is_never_sent_to_the_customer_nor_shown_to_the_model(
    client, graph_ok, fake_openai, staff_client, staff_user
):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    sent_before = len(graph_ok.sent(GRAPH_MESSAGES))
    base = f"/api/conversations/{conversation.pk}"

    note = staff_client.post(f"{base}/notes/", {"text": SECRET}, content_type="application/json")
    # Taking over and handing back makes the bot read the whole history again.
    staff_client.post(f"{base}/takeover/")
    staff_client.post(f"{base}/handback/")
    fake_openai.answer("We open at 9.")
    post_meta(client, meta_text("And on Sundays?", "wamid.sunday"))
    post_meta(client, meta_text("/history", "wamid.history"))

    assert note.status_code == 201
    assert (note.json()["author"], note.json()["staff_name"]) == ("private_note", "Alice Staff")
    assert fake_openai.requests, "the model was asked"
    for request in fake_openai.requests:
        assert "ZEBRA" not in json.dumps(request)
    sent = graph_ok.sent(GRAPH_MESSAGES)
    assert len(sent) > sent_before
    assert "ZEBRA" not in json.dumps(sent)
    assert "took over" not in json.dumps(sent)  # /history answers without internal notes either
    listed = staff_client.get(f"{base}/messages/").json()
    assert SECRET in [message["text"] for message in listed]
    assert staff_client.get("/api/conversations/").json()[0]["last_message_preview"] != SECRET


def test_private_notes_need_text_within_the_limit(conversation, staff_client):
    base = f"/api/conversations/{conversation.pk}"

    assert staff_client.post(f"{base}/notes/", {"text": ""}, content_type="application/json").status_code == 400
    assert staff_client.post(f"{base}/notes/", {"text": "x" * 4097}, content_type="application/json").status_code == 400
    assert not Message.objects.filter(author=Message.Author.PRIVATE_NOTE).exists()


def test_takeover_and_hand_back_notes_carry_short_labels_for_staff(conversation, staff_client):
    base = f"/api/conversations/{conversation.pk}"
    staff_client.post(f"{base}/takeover/")
    staff_client.post(f"{base}/handback/")

    notes = [m for m in staff_client.get(f"{base}/messages/").json() if m["author"] == "note"]

    assert [note["staff_label"] for note in notes] == ["Alice Staff took over", "Alice Staff handed back to the bot"]
    assert "assistant messages" in notes[0]["text"]  # the model still reads its instruction


def test_the_setup_lists_colleagues_labels_and_canned_responses(staff_client, staff_user, other_staff):
    Label.objects.create(name="vip")
    CannedResponse.objects.create(shortcut="hours", text="We open at 9.")

    setup = staff_client.get("/api/setup/").json()

    assert [person["name"] for person in setup["staff"]] == ["Alice Staff", "Bob"]
    assert [label["name"] for label in setup["labels"]] == ["vip"]
    assert setup["canned_responses"] == [
        {"id": CannedResponse.objects.get().pk, "shortcut": "hours", "text": "We open at 9."}
    ]


def test_the_page_and_the_setup_say_what_the_viewer_may_do(staff_client, staff_user):
    agent = staff_client.get("/api/setup/").json()["actions"]
    page = staff_client.get("/live/").content.decode()

    assert agent == {
        "take_over": True,
        "write": True,
        "assign": False,  # a Supervisor's (accounts/roles.py): the page shows no assign menu
        "triage": True,
        "add_private_note": True,
        "change_contact": True,
    }
    assert f'<script id="viewer-actions" type="application/json">{json.dumps(agent)}</script>' in page

    staff_user.groups.add(Group.objects.get(name=SUPERVISOR))
    supervisor = log_in(Client(), staff_user)  # a Supervisor passes a second factor
    assert supervisor.get("/api/setup/").json()["actions"]["assign"] is True


# On PostgreSQL a word held by more identities than COMMON_WORD_MATCHES is checked row by row
# instead of as a set of identities: 2 takes that path here for every word but the numbers.
@pytest.mark.parametrize("common_word_matches", [search.COMMON_WORD_MATCHES, 2])
def test_search_finds_contacts_by_name_number_and_email(staff_client, staff_user, monkeypatch, common_word_matches):
    monkeypatch.setattr(search, "COMMON_WORD_MATCHES", common_word_matches)
    make_conversations(12, staff=staff_user)

    def found(query: str) -> list[str]:
        rows = staff_client.get("/api/search/", {"q": query}).json()["conversations"]
        return [row["profile"]["display_name"] for row in rows]

    assert found("Customer 11") == ["Customer 11"]
    assert found("+15550000007") == ["Customer 7"]
    assert found("customer3@example") == ["Customer 3"]
    assert found("nobody") == []
    # The person's name is the contact's (every channel identity of them), in any order.
    Contact.objects.filter(identities__display_name="Customer 5").update(first_name="Ada", last_name="Lovelace")
    assert found("lovelace ada") == ["Customer 5"]


def test_search_finds_messages_by_word_with_a_snippet_and_opens_around_them(staff_client, staff_user):
    [conversation, _] = make_conversations(2, staff=staff_user)
    long_text = "Lorem ipsum " * 30 + "my parcel never arrived in Zürich " + "dolor sit " * 30
    hit = Message.objects.create(
        conversation=conversation, direction="in", author="customer", text=long_text, status="handled"
    )
    Message.objects.bulk_create(
        Message(conversation=conversation, direction="in", author="customer", text=f"later {i}", status="handled")
        for i in range(5)
    )

    result = staff_client.get("/api/search/", {"q": "parcel zürich"}).json()

    [found] = result["messages"]
    assert (found["message_id"], found["conversation_id"]) == (hit.pk, conversation.pk)
    assert "parcel never arrived in Zürich" in found["snippet"]
    assert len(found["snippet"]) < 200
    around = staff_client.get(f"/api/conversations/{conversation.pk}/messages/", {"around": hit.pk, "limit": 3}).json()
    assert hit.pk in [message["id"] for message in around]
    assert staff_client.get("/api/search/", {"q": "parcel berlin"}).json()["messages"] == []


def test_search_skips_internal_notes_and_survives_hostile_queries(conversation, staff_client):
    staff_client.post(f"/api/conversations/{conversation.pk}/takeover/")

    assert staff_client.get("/api/search/", {"q": "assistant messages"}).json()["messages"] == []
    for query in ["'; DROP TABLE x; --", "a & b | !c:*", "%_%", "(((", "   "]:
        response = staff_client.get("/api/search/", {"q": query})
        assert response.status_code in (200, 400)


# --- Staff send a file through the conversation's channel -------------------------------------


def _jpeg_bytes() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (20, 10), (0, 128, 105)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def held(conversation, staff_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    staff_client.post(f"/api/conversations/{conversation.pk}/takeover/")
    return conversation


def upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def test_staff_send_an_image_that_graph_fetches_from_a_signed_link(client, held, staff_client, graph_ok):
    photo = _jpeg_bytes()

    response = staff_client.post(
        f"/api/conversations/{held.pk}/file/", {"file": upload("lid.jpg", photo), "caption": "The new lid"}
    )

    assert response.status_code == 201, response.content
    assert (response.json()["kind"], response.json()["status"]) == ("image", "sent")
    [attachment] = response.json()["attachments"]
    assert attachment["kind"] == "image"
    sent = graph_ok.sent(GRAPH_MESSAGES)[-1]
    assert sent["type"] == "image"
    assert sent["image"]["caption"] == "The new lid"
    link = sent["image"]["link"]
    assert link.startswith("https://bot.example.com/outbound-media/")
    fetched = Client().get(link.removeprefix("https://bot.example.com"))  # Meta fetches it, no login
    assert fetched.status_code == 200
    assert fetched["Content-Type"] == "image/jpeg"
    assert b"".join(fetched.streaming_content) == photo
    assert Client().get(link.removeprefix("https://bot.example.com")[:-3] + "xx/").status_code == 404
    assert AuditEntry.objects.filter(action="file.sent_by_staff").count() == 1


def test_staff_send_a_pdf_as_a_document_with_its_name(held, staff_client, graph_ok):
    response = staff_client.post(
        f"/api/conversations/{held.pk}/file/", {"file": upload("Invoice 42.pdf", b"%PDF-1.4 fake")}
    )

    assert response.status_code == 201
    sent = graph_ok.sent(GRAPH_MESSAGES)[-1]
    assert (sent["type"], sent["document"]["filename"]) == ("document", "Invoice 42.pdf")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("run.exe", b"MZ" + bytes(100)),
        ("photo.jpg", b"<html><script>alert(1)</script>"),  # not the image its name says
        ("invoice.pdf", b"PK\x03\x04 a zip"),
    ],
)
def test_files_of_other_types_or_disguised_are_refused(held, staff_client, graph_ok, name, data):
    sends = len(graph_ok.sent(GRAPH_MESSAGES))

    response = staff_client.post(f"/api/conversations/{held.pk}/file/", {"file": upload(name, data)})

    assert (response.status_code, response.json()["code"]) == (409, "file_refused")
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == sends
    assert not Message.objects.filter(author="staff").exists()


def test_a_file_over_the_size_limit_is_refused(held, staff_client, settings):
    settings.MEDIA_MAX_BYTES = {**settings.MEDIA_MAX_BYTES, "image": 100}

    response = staff_client.post(f"/api/conversations/{held.pk}/file/", {"file": upload("big.jpg", _jpeg_bytes())})

    assert (response.status_code, response.json()["code"]) == (409, "file_refused")


def test_only_the_holder_sends_files(conversation, staff_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"

    response = staff_client.post(
        f"/api/conversations/{conversation.pk}/file/", {"file": upload("lid.jpg", _jpeg_bytes())}
    )

    assert (response.status_code, response.json()["code"]) == (409, "not_holder")


def test_the_customer_sees_typing_while_the_holder_writes_where_the_channel_shows_it(
    conversation, staff_client, graph_ok, settings, other_staff
):
    settings.WHATSAPP_TYPING_INDICATOR = True
    typing = f"/api/conversations/{conversation.pk}/typing/"
    refused = staff_client.post(typing)
    assert (refused.status_code, refused.json()["code"]) == (409, "not_holder")
    staff_client.post(f"/api/conversations/{conversation.pk}/takeover/")
    before = len(graph_ok.sent(GRAPH_MESSAGES))

    response = staff_client.post(typing)

    assert response.json() == {"shown": True}
    [sent] = graph_ok.sent(GRAPH_MESSAGES)[before:]
    customer_message = Message.objects.get(author="customer")
    assert sent == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": customer_message.provider_message_id,
        "typing_indicator": {"type": "text"},
    }


def test_a_failing_typing_indicator_is_only_a_courtesy(conversation, staff_client, fake_providers, settings):
    settings.WHATSAPP_TYPING_INDICATOR = True
    staff_client.post(f"/api/conversations/{conversation.pk}/takeover/")
    fake_providers.replace("POST", GRAPH_MESSAGES, status=500, json={"error": {"message": "down", "code": 1}})

    assert staff_client.post(f"/api/conversations/{conversation.pk}/typing/").json() == {"shown": False}


def test_on_postgresql_the_message_search_uses_the_full_text_index(staff_client, staff_user):
    from django.db import connection

    from conversations.selectors.search import search_messages

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's full-text index")
    make_conversations(3, staff=staff_user)
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        with connection.execute_wrapper(_explain_into(plans := [])):
            hits = search_messages(query="question")
        cursor.execute("RESET enable_seqscan")

    assert {hit.snippet for hit in hits} == {"Question 0", "Question 1", "Question 2"}
    assert "message_text_search_idx" in plans[0]


def _explain_into(plans: list[str]):
    def explain(execute, sql, params, many, context):
        if "to_tsquery" in sql and not sql.startswith("EXPLAIN"):
            with context["connection"].cursor() as cursor:
                cursor.execute(f"EXPLAIN {sql}", params)
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
        return execute(sql, params, many, context)

    return explain


def test_a_list_row_is_exactly_what_the_serializers_declared_fields_describe(staff_user, django_user_model):
    """The row is built in plain Python from plain values for speed (the selector's values,
    ConversationSerializer.to_representation); the fields it declares are the API schema. DRF's
    own field-by-field rendering of those fields over the conversation *models* (the summary
    annotated as the admin reads it; the contact, currency and agent composed here from the
    models) must give the very same row, or the schema, the models' own rules (names, the
    WhatsApp window, labels) and the page's data have drifted apart."""
    from django.conf import settings
    from rest_framework import serializers

    from agents.models import Agent
    from conversations.selectors.inbox import annotate_inbox_summary, list_conversations_for_inbox
    from conversations.serializers import ConversationSerializer
    from profiles.models import ClientProfile, Provider

    conversations = make_conversations(5, staff=staff_user)
    conversations[1].labels.add(Label.objects.create(name="VIP", color="#aa0000"), Label.objects.create(name="Billing"))
    conversations[2].resolved_at = conversations[2].snoozed_until = timezone.now()
    conversations[2].current_agent = Agent.objects.create(name="billing", instructions="Bills.")
    conversations[2].save(update_fields=["resolved_at", "snoozed_until", "current_agent"])
    # A holder known by login only; a named, opted-out contact; a contact whose name is another
    # identity's, which also has an SMS conversation; a model cost.
    conversations[3].assigned_to = django_user_model.objects.create_user(username="carol", is_staff=True)
    conversations[3].save(update_fields=["assigned_to"])
    Contact.objects.filter(pk=conversations[0].profile.contact_id).update(
        first_name="Maria", last_name="Rossi", opted_out_at=timezone.now()
    )
    ClientProfile.objects.filter(pk=conversations[4].profile_id).update(display_name="")
    sms = ClientProfile.objects.create(
        contact_id=conversations[4].profile.contact_id,
        provider=Provider.TWILIO,
        external_id="+15550000004",
        display_name="Gianni",
    )
    Conversation.objects.create(profile=sms, channel=Channel.TWILIO_SMS, business_address="+15550000000")
    conversations[4].messages.filter(author="bot").update(cost="0.001250")

    rows = list_conversations_for_inbox(viewer_id=staff_user.pk)
    assert len(rows) == 6
    models = {row.pk: row for row in annotate_inbox_summary(Conversation.objects.all(), viewer_id=staff_user.pk)}
    for row in rows:
        conversation = models[row["id"]]
        contact = conversation.profile.contact
        names = [identity.display_name for identity in contact.identities.order_by("pk") if identity.display_name]
        used = set(contact.identities.values_list("conversations__channel", flat=True))
        conversation.contact = {
            "id": contact.pk,
            "name": contact.full_name or (names[0] if names else "") or str(conversation.profile),
            "is_opted_out": contact.opted_out_at is not None,
            "channels": [{"channel": c.value, "label": c.label} for c in Channel if c.value in used],
        }
        conversation.currency = settings.MODEL_PRICE_CURRENCY
        conversation.agent = conversation.current_agent.name if conversation.current_agent else ""
        serializer = ConversationSerializer(row)
        assert serializer.data == serializers.ModelSerializer.to_representation(serializer, conversation)
    shown = {row["id"]: ConversationSerializer(row).data for row in rows}
    assert shown[conversations[0].pk]["contact"]["name"] == "Maria Rossi"
    assert shown[conversations[0].pk]["contact"]["is_opted_out"] is True
    assert shown[conversations[3].pk]["holder"]["name"] == "carol"
    assert shown[conversations[1].pk]["holder"]["name"] == "Alice Staff"
    assert shown[conversations[4].pk]["contact"]["name"] == "Gianni"
    assert len(shown[conversations[4].pk]["contact"]["channels"]) == 2
    assert shown[conversations[4].pk]["contact_cost"] != "0.000000"
    assert shown[conversations[2].pk]["agent"] == "billing"
    assert [label["name"] for label in shown[conversations[1].pk]["labels"]] == ["Billing", "VIP"]
