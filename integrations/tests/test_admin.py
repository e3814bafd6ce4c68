from __future__ import annotations

import re

import pytest
from django.core.exceptions import PermissionDenied

from accounts.models import SecurityEvent
from accounts.roles import ADMINISTRATOR, AGENT, DATA_OFFICER, SUPERVISOR
from accounts.tests.helpers import EVERY_ROLE, NO_ROLE, log_in, make_staff, user_with
from integrations.models import ApiToken, Scope
from integrations.tokens import create_api_token, hash_key

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


# Who may create a token in the admin, by role: (for themselves, for another staff member). A
# token acts as its staff member, so one made for someone else acts in their name.
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
