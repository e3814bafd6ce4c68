from __future__ import annotations

import re

import pytest
from django.core.exceptions import PermissionDenied

from accounts.models import SecurityEvent
from accounts.roles import ADMINISTRATOR, AGENT, DATA_OFFICER, SUPERVISOR
from accounts.tests.helpers import EVERY_ROLE, NO_ROLE, log_in, make_staff, user_with
from integrations.models import ApiToken, Scope
from integrations.tokens import create_api_token, hash_key, save_changed_api_token

pytestmark = pytest.mark.django_db


def test_staff_create_a_token_see_its_key_once_and_revoke_it(admin_client, staff_user, client):
    created = admin_client.post(
        "/admin/integrations/apitoken/add/",
        {"name": "CRM sync", "user": staff_user.pk, "scopes": [Scope.READ_CONVERSATIONS, Scope.SEND_MESSAGES]},
        follow=True,
    )

    [key] = re.findall(r"wbt_[A-Za-z0-9_-]{40,}", created.content.decode())
    token = ApiToken.objects.get()
    assert token.key_hash == hash_key(key)
    assert token.scopes == [Scope.READ_CONVERSATIONS, Scope.SEND_MESSAGES]
    assert key not in admin_client.get(f"/admin/integrations/apitoken/{token.pk}/change/").content.decode()
    assert client.get("/api/conversations/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200

    admin_client.post("/admin/integrations/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})

    assert client.get("/api/conversations/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401


def test_a_token_can_only_act_as_active_staff(admin_client, django_user_model):
    customer = django_user_model.objects.create_user("customer", password="customer-password-1")

    page = admin_client.post(
        "/admin/integrations/apitoken/add/", {"name": "x", "user": customer.pk, "scopes": [Scope.READ_CONVERSATIONS]}
    )

    assert page.status_code == 200  # the form again, with its error
    assert not ApiToken.objects.exists()


# Who may create a token in the admin, or edit its name and scopes, by role: (for themselves,
# for another staff member). A token acts as its staff member, so one made or widened for someone
# else acts in their name.
TOKEN_CREATION = {
    AGENT: (False, False),
    SUPERVISOR: (True, False),
    DATA_OFFICER: (False, False),
    ADMINISTRATOR: (True, True),
    NO_ROLE: (False, False),
}


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_only_an_administrator_creates_a_token_for_someone_else(client, role):
    actor, colleague = user_with(role), make_staff("colleague", AGENT)
    log_in(client, actor)
    may_for_self, may_for_other = TOKEN_CREATION[role]

    for owner in (actor, colleague):
        client.post(
            "/admin/integrations/apitoken/add/",
            {"name": "CRM", "user": owner.pk, "scopes": [Scope.READ_CONVERSATIONS]},
        )

    assert ApiToken.objects.filter(user=actor).exists() == may_for_self
    assert ApiToken.objects.filter(user=colleague).exists() == may_for_other
    created = SecurityEvent.objects.filter(action="api_token.created", actor=actor)
    assert sorted(created.values_list("detail__for", flat=True)) == sorted(
        f"auth.user #{owner.pk}" for owner, may in ((actor, may_for_self), (colleague, may_for_other)) if may
    )


def test_a_supervisor_is_offered_only_themself_as_the_tokens_staff_member(client):
    supervisor, colleague = user_with(SUPERVISOR), make_staff("colleague", AGENT)
    log_in(client, supervisor)

    form = client.get("/admin/integrations/apitoken/add/").content.decode()

    assert f'<option value="{supervisor.pk}" selected>' in form
    assert f'value="{colleague.pk}"' not in form


def test_the_service_refuses_a_supervisors_token_for_someone_else_and_audits_it():
    supervisor, colleague = user_with(SUPERVISOR), make_staff("colleague", AGENT)

    with pytest.raises(PermissionDenied):
        create_api_token(name="CRM", user=colleague, scopes=[Scope.READ_CONVERSATIONS], created_by=supervisor)

    assert not ApiToken.objects.exists()
    refused = SecurityEvent.objects.get(action="api_token.refused")
    assert (refused.actor, refused.target) == (supervisor, f"auth.user #{colleague.pk}")


def test_creating_and_revoking_a_token_are_audited(client):
    administrator, colleague = user_with(ADMINISTRATOR), make_staff("colleague", AGENT)
    token, _ = create_api_token(name="CRM", user=colleague, scopes=[Scope.TAKE_OVER], created_by=administrator)
    log_in(client, administrator)

    client.post("/admin/integrations/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})

    created = SecurityEvent.objects.get(action="api_token.created")
    revoked = SecurityEvent.objects.get(action="api_token.revoked")
    assert (created.actor, created.target) == (administrator, f"integrations.apitoken #{token.pk}")
    assert created.detail == {"for": f"auth.user #{colleague.pk}", "scopes": [Scope.TAKE_OVER]}
    assert (revoked.actor, revoked.target) == (administrator, f"integrations.apitoken #{token.pk}")


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_only_an_administrator_edits_someone_elses_token(client, role):
    actor, colleague = user_with(role), make_staff("colleague", AGENT)
    own, _ = create_api_token(name="mine", user=actor, scopes=[Scope.READ_CONVERSATIONS], created_by=None)
    theirs, _ = create_api_token(name="theirs", user=colleague, scopes=[Scope.READ_CONVERSATIONS], created_by=None)
    log_in(client, actor)
    may_edit_own, may_edit_theirs = TOKEN_CREATION[role]  # the same rule as creating

    for token in (own, theirs):
        client.post(
            f"/admin/integrations/apitoken/{token.pk}/change/",
            {"name": "widened", "scopes": [Scope.READ_CONVERSATIONS, Scope.SEND_MESSAGES]},
        )

    widened = ("widened", [Scope.READ_CONVERSATIONS, Scope.SEND_MESSAGES])
    for token, name, may in ((own, "mine", may_edit_own), (theirs, "theirs", may_edit_theirs)):
        token.refresh_from_db()
        assert (token.name, token.scopes) == (widened if may else (name, [Scope.READ_CONVERSATIONS]))
    changed = SecurityEvent.objects.filter(action="api_token.changed", actor=actor)
    assert sorted(changed.values_list("target", flat=True)) == sorted(
        f"integrations.apitoken #{token.pk}" for token, may in ((own, may_edit_own), (theirs, may_edit_theirs)) if may
    )


def test_a_supervisor_sees_a_colleagues_token_read_only_and_cannot_delete_it(client):
    supervisor, colleague = user_with(SUPERVISOR), make_staff("colleague", AGENT)
    theirs, _ = create_api_token(name="theirs", user=colleague, scopes=[Scope.TAKE_OVER], created_by=None)
    own, _ = create_api_token(name="mine", user=supervisor, scopes=[Scope.TAKE_OVER], created_by=None)
    log_in(client, supervisor)

    page = client.get(f"/admin/integrations/apitoken/{theirs.pk}/change/")
    refused = client.post(f"/admin/integrations/apitoken/{theirs.pk}/delete/", {"post": "yes"})
    client.post(f"/admin/integrations/apitoken/{own.pk}/delete/", {"post": "yes"})

    assert page.status_code == 200 and 'name="name"' not in page.content.decode()
    assert refused.status_code == 403
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["theirs"]


def test_an_edit_is_audited_with_what_changed_never_the_name(client):
    administrator, colleague = user_with(ADMINISTRATOR), make_staff("colleague", AGENT)
    token, _ = create_api_token(name="CRM", user=colleague, scopes=[Scope.READ_CONVERSATIONS], created_by=None)
    log_in(client, administrator)

    client.post(
        f"/admin/integrations/apitoken/{token.pk}/change/",
        {"name": "CRM sync", "scopes": [Scope.READ_CONVERSATIONS, Scope.TAKE_OVER]},
    )

    changed = SecurityEvent.objects.get(action="api_token.changed")
    assert (changed.actor, changed.target) == (administrator, f"integrations.apitoken #{token.pk}")
    assert changed.detail == {
        "for": f"auth.user #{colleague.pk}",
        "changed": ["name", "scopes"],
        "scopes": [Scope.READ_CONVERSATIONS, Scope.TAKE_OVER],
    }


def test_the_service_refuses_a_supervisors_edit_of_someone_elses_token_and_audits_it():
    supervisor, colleague = user_with(SUPERVISOR), make_staff("colleague", AGENT)
    token, _ = create_api_token(name="CRM", user=colleague, scopes=[Scope.READ_CONVERSATIONS], created_by=None)
    token.scopes = [*Scope.values]

    with pytest.raises(PermissionDenied):
        save_changed_api_token(token=token, changed=["scopes"], changed_by=supervisor)

    token.refresh_from_db()
    assert token.scopes == [Scope.READ_CONVERSATIONS]
    refused = SecurityEvent.objects.get(action="api_token.refused")
    assert (refused.actor, refused.target) == (supervisor, f"integrations.apitoken #{token.pk}")
    assert refused.detail == {"for": f"auth.user #{colleague.pk}", "changed": ["scopes"]}
