"""Every role against every staff endpoint, admin page and admin action: allowed where the role
says (accounts/roles.py), 403 elsewhere. The tables below are the specification: a new
endpoint, admin page or action that is not in them fails these tests until it is declared."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.roles import ADMINISTRATOR, AGENT, DATA_OFFICER, ROLES, SUPERVISOR
from accounts.tests.helpers import EVERY_ROLE, log_in, make_staff, user_with
from channels_app.tests.backoffice_data import make_conversations
from conversations import api_urls
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db

INBOX = {AGENT, SUPERVISOR}

# Staff API: URL name → (method, JSON body, roles allowed).
API = {
    "inbox-conversations": ("get", None, INBOX),
    "inbox-conversation": ("get", None, INBOX),
    "inbox-messages": ("get", None, INBOX),
    "inbox-takeover": ("post", {}, INBOX),
    "inbox-handback": ("post", {}, INBOX),
    "inbox-send": ("post", {"text": "Hello"}, INBOX),
    "inbox-template": ("post", {"name": "hello_world", "language": "en_US"}, INBOX),
    "inbox-read": ("post", {"up_to_message_id": 1}, INBOX),
    "inbox-contact": ("patch", {"company": "Analytical Engines"}, INBOX),
    "inbox-contact-merge": ("post", {"contact_id": 0}, INBOX),  # an unknown contact: 400, not 403
    "inbox-identity-split": ("post", {}, INBOX),  # a contact's only identity: 400, not 403
    "contact-messages": ("post", {"text": "Hello"}, INBOX),
    "inbox-counts": ("get", None, INBOX),
    "inbox-search": ("get", {"q": "ada"}, INBOX),
    "inbox-setup": ("get", None, INBOX),
    "inbox-assign": ("post", {"assignee_id": 1}, {SUPERVISOR}),
    "inbox-resolve": ("post", {}, INBOX),
    "inbox-reopen": ("post", {}, INBOX),
    "inbox-snooze": ("post", {"until": None}, INBOX),
    "inbox-labels": ("put", {"label_ids": []}, INBOX),
    "inbox-note": ("post", {"text": "VIP"}, INBOX),
    "inbox-file": ("post", {}, INBOX),  # no file: 400, not 403
    "inbox-typing": ("post", {}, INBOX),  # held by someone else: 409, not 403
}

# Admin changelists: "app_label.model" → roles that may open it.
ADMIN_PAGES = {
    "conversations.conversation": INBOX,
    "conversations.attachment": INBOX,
    "conversations.message": INBOX,
    "conversations.label": INBOX,
    "conversations.cannedresponse": INBOX,
    "conversations.auditentry": {SUPERVISOR},
    "conversations.processedmessage": {SUPERVISOR},
    "profiles.clientprofile": {AGENT, SUPERVISOR, DATA_OFFICER},
    "profiles.contact": {AGENT, SUPERVISOR, DATA_OFFICER},
    "knowledge.article": {SUPERVISOR},
    "knowledge.tag": {SUPERVISOR},
    "knowledge.chunk": {SUPERVISOR},
    "knowledge.knowledgeimport": {SUPERVISOR},
    "gdpr.erasurerecord": {DATA_OFFICER},
    "gdpr.remotedeletion": {DATA_OFFICER},
    "auth.user": {ADMINISTRATOR},
    "auth.group": {ADMINISTRATOR},
    "axes.accessattempt": {ADMINISTRATOR},
    "axes.accesslog": {ADMINISTRATOR},
    "axes.accessfailurelog": {ADMINISTRATOR},
    "otp_totp.totpdevice": {ADMINISTRATOR},
    "otp_static.staticdevice": {ADMINISTRATOR},
    "accounts.securityevent": {ADMINISTRATOR},
    "integrations.apitoken": {SUPERVISOR, ADMINISTRATOR},
    "integrations.webhookendpoint": {SUPERVISOR},
    "agents.tool": {SUPERVISOR},
    "agents.agent": {SUPERVISOR},
    "conversations.toolcall": INBOX,
    "integrations.webhookdelivery": {SUPERVISOR},
}

# Admin actions: ("app_label.model", action) → roles that are offered it (and may run it).
ADMIN_ACTIONS = {
    ("profiles.clientprofile", "export_personal_data"): {DATA_OFFICER},
    ("profiles.clientprofile", "erase_personal_data"): {DATA_OFFICER},
    ("profiles.clientprofile", "delete_selected"): set(),
    ("profiles.clientprofile", "split_selected_identities"): INBOX,
    ("profiles.contact", "merge_selected_contacts"): INBOX,
    ("profiles.contact", "delete_selected"): set(),
    ("conversations.processedmessage", "retry_recording"): {SUPERVISOR},
    ("conversations.processedmessage", "drop_stored_message"): {SUPERVISOR},
    ("conversations.conversation", "delete_selected"): set(),
    ("conversations.attachment", "delete_selected"): set(),
    ("conversations.label", "delete_selected"): {SUPERVISOR},
    ("conversations.cannedresponse", "delete_selected"): {SUPERVISOR},
    ("knowledge.article", "delete_selected"): {SUPERVISOR},
    ("knowledge.article", "activate"): {SUPERVISOR},
    ("knowledge.article", "deactivate"): {SUPERVISOR},
    ("knowledge.article", "reindex"): {SUPERVISOR},
    ("knowledge.tag", "delete_selected"): {SUPERVISOR},
    ("knowledge.knowledgeimport", "delete_selected"): {SUPERVISOR},
    ("auth.user", "delete_selected"): {ADMINISTRATOR},
    ("auth.user", "reset_second_factor"): {ADMINISTRATOR},
    ("auth.user", "issue_setup_code"): {ADMINISTRATOR},
    ("auth.group", "delete_selected"): set(),
    ("axes.accessattempt", "delete_selected"): {ADMINISTRATOR},
    ("axes.accessattempt", "cleanup_expired_attempts"): {ADMINISTRATOR},
    ("axes.accesslog", "delete_selected"): set(),
    ("axes.accessfailurelog", "delete_selected"): set(),
    ("otp_totp.totpdevice", "delete_selected"): {ADMINISTRATOR},
    ("otp_static.staticdevice", "delete_selected"): {ADMINISTRATOR},
    ("integrations.apitoken", "revoke"): {SUPERVISOR, ADMINISTRATOR},
    ("integrations.apitoken", "delete_selected"): {SUPERVISOR},
    ("integrations.webhookendpoint", "delete_selected"): {SUPERVISOR},
    ("integrations.webhookdelivery", "resend"): {SUPERVISOR},
    ("integrations.webhookdelivery", "delete_selected"): set(),
    ("agents.tool", "delete_selected"): {SUPERVISOR},
    ("agents.agent", "delete_selected"): {SUPERVISOR},
}


@pytest.fixture
def conversation(db):
    other = make_staff("holder", AGENT)
    return make_conversations(2, staff=other)[1]  # in human mode, held by someone else


def api_url(name: str, conversation: Conversation) -> str:
    if name in ("inbox-conversations", "inbox-counts", "inbox-search", "inbox-setup"):
        return reverse(name)
    if name in ("inbox-contact", "inbox-contact-merge", "contact-messages"):
        return reverse(name, args=[conversation.profile.contact_id])
    if name == "inbox-identity-split":
        return reverse(name, args=[conversation.profile_id])
    return reverse(name, args=[conversation.pk])


def test_every_staff_api_endpoint_is_in_the_table():
    assert {pattern.name for pattern in api_urls.urlpatterns} == set(API)


def test_every_admin_page_is_in_the_table():
    assert {model._meta.label_lower for model in admin.site._registry} == set(ADMIN_PAGES)


def test_every_role_permission_exists():
    assert {name for name in ROLES} == {AGENT, SUPERVISOR, DATA_OFFICER, ADMINISTRATOR}
    for role, permissions in ROLES.items():
        held = {
            f"{app}.{code}"
            for app, code in Group.objects.get(name=role).permissions.values_list("content_type__app_label", "codename")
        }
        assert held == set(permissions), role


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_each_role_reaches_exactly_its_staff_api_endpoints(client, role):
    """Each endpoint is asked about a conversation of its own, held by someone else: what one
    request changed never meets the next."""
    holder = make_staff("holder", AGENT)
    log_in(client, user_with(role))
    outcomes, changed = {}, []
    held = make_conversations(2 * len(API), staff=holder)[1::2]  # in human mode; made at once, not per endpoint
    for conversation, (name, (method, body, allowed)) in zip(held, sorted(API.items()), strict=True):
        mode_before = Conversation.objects.values_list("mode", "assigned_to").get(pk=conversation.pk)
        messages_before = Message.objects.count()

        response = getattr(client, method)(api_url(name, conversation), body, content_type="application/json")

        outcomes[name] = response.status_code if response.status_code in (401, 403) else "reached"
        mode_after = Conversation.objects.values_list("mode", "assigned_to").get(pk=conversation.pk)
        if role not in allowed and (mode_after != mode_before or Message.objects.count() != messages_before):
            changed.append(name)

    assert outcomes == {name: "reached" if role in allowed else 403 for name, (_, _, allowed) in API.items()}
    assert changed == []  # refused requests change nothing


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_each_role_reaches_the_live_inbox_page_and_attachments_only_with_the_inbox_role(client, role):
    log_in(client, user_with(role))

    page = client.get("/live/")
    attachment = client.get("/staff/attachments/00000000-0000-0000-0000-000000000000/1/")

    assert page.status_code == (200 if role in INBOX else 403)
    assert attachment.status_code == (404 if role in INBOX else 403)


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_each_role_opens_exactly_its_admin_pages(client, role):
    log_in(client, user_with(role))

    statuses = {
        model: client.get(reverse(f"admin:{model.replace('.', '_')}_changelist")).status_code for model in ADMIN_PAGES
    }

    assert statuses == {model: 200 if role in roles else 403 for model, roles in ADMIN_PAGES.items()}


def offered_actions(user) -> set[tuple[str, str]]:
    request = RequestFactory().get("/admin/")
    request.user = user
    return {
        (model._meta.label_lower, name)
        for model, model_admin in admin.site._registry.items()
        for name in model_admin.get_actions(request)
    }


def test_every_admin_action_is_in_the_table(admin_user):
    assert offered_actions(admin_user) == set(ADMIN_ACTIONS)


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_each_role_is_offered_exactly_its_admin_actions(role):
    expected = {action for action, roles in ADMIN_ACTIONS.items() if role in roles}

    assert offered_actions(user_with(role)) == expected


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_a_gdpr_action_posted_without_the_role_erases_nothing(client, conversation, role):
    log_in(client, user_with(role))

    client.post(
        "/admin/profiles/clientprofile/",
        {"action": "erase_personal_data", "_selected_action": [conversation.profile_id], "post": "yes"},
    )

    assert Conversation.objects.filter(pk=conversation.pk).exists() is (role != DATA_OFFICER)


def test_a_permission_revoked_between_two_requests_is_refused_at_the_next_one(client, conversation):
    agent = user_with(AGENT)
    log_in(client, agent)
    assert client.get("/api/conversations/").status_code == 200

    agent.groups.clear()

    assert client.get("/api/conversations/").status_code == 403
    assert client.post(f"/api/conversations/{conversation.pk}/takeover/").status_code == 403


def test_an_administrator_cannot_make_anyone_a_superuser(client):
    administrator = user_with(ADMINISTRATOR)
    log_in(client, administrator)
    page = client.get(reverse("admin:auth_user_change", args=[administrator.pk]))

    assert page.status_code == 200
    assert 'name="is_superuser"' not in page.content.decode()
    assert 'name="groups"' in page.content.decode()


def test_an_administrator_cannot_take_over_a_superuser(client, admin_user):
    TOTPDevice.objects.create(user=admin_user, name="phone", confirmed=True)
    log_in(client, user_with(ADMINISTRATOR))
    devices_before = TOTPDevice.objects.filter(user=admin_user).count()

    password_page = client.get(reverse("admin:auth_user_password_change", args=[admin_user.pk]))
    client.post(
        reverse("admin:auth_user_changelist"), {"action": "reset_second_factor", "_selected_action": [admin_user.pk]}
    )
    change_page = client.get(reverse("admin:auth_user_change", args=[admin_user.pk])).content.decode()

    assert password_page.status_code == 403
    assert TOTPDevice.objects.filter(user=admin_user).count() == devices_before
    assert 'name="username"' not in change_page  # read-only


def test_a_token_acts_only_within_its_staff_members_role(client, conversation):
    from integrations.models import Scope
    from integrations.tokens import create_api_token

    agent = user_with(AGENT)
    _, key = create_api_token(name="CRM", user=agent, scopes=[Scope.READ_CONVERSATIONS], created_by=None)
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    assert client.get("/api/conversations/", **bearer).status_code == 200

    agent.groups.clear()

    assert client.get("/api/conversations/", **bearer).status_code == 403
