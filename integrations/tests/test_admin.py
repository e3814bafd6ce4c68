from __future__ import annotations

import re

import pytest

from integrations.models import ApiToken, Scope
from integrations.tokens import hash_key

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
