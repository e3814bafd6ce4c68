"""The live inbox page and its API: staff only, CSRF, CSP, constant queries, staff actions."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from conversations.models import AuditEntry, Conversation, Message
from conversations.tests.fakes import GRAPH_MESSAGES
from conversations.tests.helpers import meta_body, meta_text, post_meta

from .backoffice_data import make_conversations

pytestmark = pytest.mark.django_db

# Each request: session, user, whether a second factor is owed, the user's permissions (their own,
# their roles'; checked per request, never cached). The list API: one more for every row, their labels.
MAX_QUERIES_INITIAL_LOAD = 12


@pytest.mark.parametrize("rows", [10, 200])
def test_the_live_inbox_initial_load_runs_a_bounded_number_of_queries_for_10_and_200_conversations(
    staff_client, staff_user, django_assert_max_num_queries, rows
):
    make_conversations(rows, staff=staff_user)

    with django_assert_max_num_queries(MAX_QUERIES_INITIAL_LOAD):
        page = staff_client.get("/live/")
        conversations = staff_client.get("/api/conversations/")

    assert page.status_code == 200
    assert len(conversations.json()) == rows


def test_the_live_inbox_needs_a_staff_login(client, django_user_model):
    assert client.get("/live/").status_code == 302
    client.force_login(django_user_model.objects.create_user("customer", password="customer-password-1"))
    assert client.get("/live/")["Location"].startswith("/admin/login/")
    assert client.get("/api/conversations/").status_code == 403


def test_the_api_refuses_anonymous_callers(client):
    assert client.get("/api/conversations/").status_code == 403
    assert client.post("/api/conversations/1/takeover/").status_code == 403


def test_the_live_inbox_forbids_inline_script_by_content_security_policy(staff_client):
    response = staff_client.get("/live/")

    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert "<script>" not in response.content.decode()
    assert 'src="/static/live/inbox.js"' in response.content.decode()


def test_state_changing_requests_need_the_csrf_token(client, graph_ok, staff_user):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    page = browser.get("/live/")
    token = page.context["csrf_token"]

    refused = browser.post(f"/api/conversations/{conversation.pk}/takeover/")
    accepted = browser.post(f"/api/conversations/{conversation.pk}/takeover/", HTTP_X_CSRFTOKEN=str(token))

    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert accepted.status_code == 200
    assert accepted.json()["holder"] == {"id": staff_user.pk, "name": "Alice Staff"}


def test_messages_after_an_id_are_what_a_reconnecting_page_catches_up_on(client, graph_ok, staff_client):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    seen = Message.objects.order_by("id").last().pk
    post_meta(client, meta_text("Missed while offline", "wamid.missed"))

    response = staff_client.get(f"/api/conversations/{conversation.pk}/messages/?after={seen}")

    assert [(m["author"], m["text"]) for m in response.json()] == [
        ("customer", "Missed while offline"),
        ("bot", "Hello! How can I help?"),
    ]


def test_staff_take_over_send_and_hand_back_through_the_api(client, graph_ok, staff_client, staff_user):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    base = f"/api/conversations/{conversation.pk}"

    took = staff_client.post(f"{base}/takeover/")
    sent = staff_client.post(f"{base}/send/", {"text": "Hi, Alice here."}, content_type="application/json")
    handed = staff_client.post(f"{base}/handback/")

    assert took.json()["mode"] == "human"
    assert sent.status_code == 201
    assert (sent.json()["author"], sent.json()["staff_name"], sent.json()["status"]) == ("staff", "Alice Staff", "sent")
    assert graph_ok.sent(GRAPH_MESSAGES)[-1]["text"]["body"] == "Hi, Alice here."
    assert (handed.json()["mode"], handed.json()["holder"]) == ("bot", None)
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "conversation.taken_over",
        "message.sent_by_staff",
        "conversation.handed_back",
    ]


def test_writing_in_a_conversation_someone_else_holds_is_refused_with_their_name(
    client, graph_ok, staff_client, other_staff
):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    bob = Client()
    bob.force_login(other_staff)
    bob.post(f"/api/conversations/{conversation.pk}/takeover/")

    response = staff_client.post(
        f"/api/conversations/{conversation.pk}/send/", {"text": "Me too"}, content_type="application/json"
    )

    assert response.status_code == 409
    assert response.json() == {"code": "not_holder", "detail": "Bob holds this conversation."}


def test_a_closed_window_is_reported_and_a_template_refusal_comes_back_with_its_reason(
    client, fake_providers, graph_ok, staff_client
):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    Conversation.objects.update(last_customer_message_at=timezone.now() - timedelta(days=2))
    base = f"/api/conversations/{conversation.pk}"
    staff_client.post(f"{base}/takeover/")
    fake_providers.replace(
        "POST",
        GRAPH_MESSAGES,
        status=400,
        json={"error": {"message": "(#132001) Template name does not exist in the translation", "code": 132001}},
    )

    detail = staff_client.get(f"{base}/").json()
    free_form = staff_client.post(f"{base}/send/", {"text": "Hello?"}, content_type="application/json")
    template = staff_client.post(
        f"{base}/template/",
        {"name": "missing_one", "language": "it", "parameters": []},
        content_type="application/json",
    )

    assert detail["is_window_open"] is False
    assert (free_form.status_code, free_form.json()["code"]) == (409, "window_closed")
    assert template.status_code == 201
    assert (template.json()["status"], template.json()["error_code"]) == ("failed", "132001")
    assert "does not exist" in template.json()["error_title"]


def test_a_staff_contact_edit_changes_the_fields_and_is_audited(client, graph_ok, staff_client, staff_user):
    post_meta(client, meta_body("text"))
    contact = Conversation.objects.get().profile.contact

    response = staff_client.patch(
        f"/api/contacts/{contact.pk}/",
        {"company": "Analytical Engines", "email": "ada@example.com"},
        content_type="application/json",
    )
    invalid = staff_client.patch(f"/api/contacts/{contact.pk}/", {"email": "nope"}, content_type="application/json")

    assert response.status_code == 200
    assert (response.json()["company"], response.json()["email"]) == ("Analytical Engines", "ada@example.com")
    assert invalid.status_code == 400
    entry = AuditEntry.objects.get(action="contact.edited_by_staff")
    assert (entry.actor, entry.contact, entry.detail) == (staff_user, contact, {"fields": ["company", "email"]})


def test_reading_a_conversation_clears_its_unread_badge(client, graph_ok, staff_client):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    last = Message.objects.order_by("id").last().pk
    assert staff_client.get("/api/conversations/").json()[0]["unread_count"] == 1

    staff_client.post(
        f"/api/conversations/{conversation.pk}/read/", {"up_to_message_id": last}, content_type="application/json"
    )

    assert staff_client.get("/api/conversations/").json()[0]["unread_count"] == 0
