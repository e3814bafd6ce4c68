"""The admin as a helpdesk's back office: a Message admin, read-only conversation pages, the way
between the admin and the live inbox, the front page and the favicon."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from conversations.models import Channel, Conversation, Message

from .backoffice_data import make_conversations

pytestmark = pytest.mark.django_db

MESSAGES = "/admin/conversations/message/"


def test_the_message_admin_finds_a_message_by_its_words_and_links_to_its_conversation(admin_client, admin_user):
    [first, second] = make_conversations(2, staff=admin_user)

    page = admin_client.get(MESSAGES, {"q": '"Question 1"'}).content.decode()

    assert "Question 1" in page
    assert "Question 0" not in page
    assert f"/admin/conversations/conversation/{second.pk}/change/" in page
    assert f"/live/#conversation={second.pk}&amp;message=" in page
    assert f"/admin/conversations/conversation/{first.pk}/change/" not in page


def test_the_message_admin_finds_the_messages_of_a_number(admin_client, admin_user):
    make_conversations(3, staff=admin_user)

    page = admin_client.get(MESSAGES, {"q": "+15550000002"}).content.decode()

    assert "Question 2" in page and "Answer 2" in page
    assert "Question 1" not in page


@pytest.mark.parametrize(
    ("params", "shown", "hidden"),
    [
        ({"direction__exact": "in"}, "Question 0", "Answer 0"),
        ({"status__exact": "failed"}, "Staff note 0", "Question 0"),
        ({"conversation__channel__exact": Channel.TWILIO_SMS}, "Question 1", "Question 0"),
    ],
)
def test_the_message_admin_filters_by_direction_status_and_channel(admin_client, admin_user, params, shown, hidden):
    [_, sms] = make_conversations(2, staff=admin_user)
    Conversation.objects.filter(pk=sms.pk).update(channel=Channel.TWILIO_SMS)

    page = admin_client.get(MESSAGES, params).content.decode()

    assert shown in page
    assert hidden not in page


def test_the_message_admin_filters_by_date(admin_client, admin_user):
    [old, _] = make_conversations(2, staff=admin_user)
    Message.objects.filter(conversation=old).update(created_at=timezone.now() - timedelta(days=40))
    # As the admin's date filter writes it: midnight, aware.
    since = str((timezone.now() - timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0))

    page = admin_client.get(MESSAGES, {"created_at__gte": since}).content.decode()

    assert "Question 1" in page
    assert "Question 0" not in page


def test_the_message_admin_is_read_only(admin_client, admin_user):
    make_conversations(1, staff=admin_user)
    message = Message.objects.first()

    page = admin_client.get(f"{MESSAGES}{message.pk}/change/").content.decode()

    assert 'name="_save"' not in page
    assert admin_client.post(f"{MESSAGES}{message.pk}/change/", {"text": "changed"}).status_code == 403
    assert admin_client.get(f"{MESSAGES}add/").status_code == 403


def test_the_conversation_page_has_no_save_buttons_and_links_to_the_live_inbox(admin_client, admin_user):
    [conversation] = make_conversations(1, staff=admin_user)

    page = admin_client.get(f"/admin/conversations/conversation/{conversation.pk}/change/").content.decode()

    assert 'name="_save"' not in page
    assert 'name="_continue"' not in page
    assert 'name="_addanother"' not in page
    assert f"/live/#conversation={conversation.pk}" in page


def test_the_conversation_list_shows_flags_in_the_mode_column_and_cuts_long_previews(admin_client, admin_user):
    [conversation] = make_conversations(1, staff=admin_user)  # customer 0 asked for a person
    Message.objects.filter(conversation=conversation, author="staff").update(text="x" * 500)

    page = admin_client.get("/admin/conversations/conversation/").content.decode()

    assert "⚑ needs a person" in page
    assert "x" * 59 + "…" in page
    assert "x" * 61 not in page


def test_every_admin_page_links_to_the_live_inbox_and_the_inbox_links_back(admin_client):
    assert 'id="live-inbox-link" href="/live/"' in admin_client.get("/admin/").content.decode()
    assert 'href="/admin/"' in admin_client.get("/live/").content.decode()


def test_the_front_page_sends_staff_to_the_live_inbox(admin_client):
    response = admin_client.get("/")

    assert (response.status_code, response["Location"]) == (302, "/live/")


def test_the_front_page_is_a_small_landing_page_for_everyone_else(client, django_user_model):
    page = client.get("/")
    client.force_login(django_user_model.objects.create_user("customer", password="customer-password-1"))
    customer_page = client.get("/")

    for response in (page, customer_page):
        assert response.status_code == 200
        assert "Staff sign in" in response.content.decode()
        assert "/admin/login/?next=/live/" in response.content.decode()


def test_the_favicon_is_served_and_linked(admin_client):
    anonymous = Client()
    response = anonymous.get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"].endswith("favicon.svg")
    assert "favicon.svg" in anonymous.get("/").content.decode()
    assert "favicon.svg" in admin_client.get("/admin/").content.decode()
    assert "favicon.svg" in admin_client.get("/live/").content.decode()


def test_labels_and_canned_responses_are_managed_in_the_admin(admin_client):
    response = admin_client.post(
        "/admin/conversations/cannedresponse/add/", {"shortcut": "shipping", "text": "We ship in 2 days."}
    )
    assert response.status_code == 302
    response = admin_client.post("/admin/conversations/label/add/", {"name": "billing", "color": "#cc0000"})
    assert response.status_code == 302

    assert "/shipping" in admin_client.get("/admin/conversations/cannedresponse/").content.decode()
    assert "billing" in admin_client.get("/admin/conversations/label/").content.decode()
