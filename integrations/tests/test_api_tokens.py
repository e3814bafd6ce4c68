from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.models import Channel, Conversation, Message
from integrations.models import ApiToken, Scope
from integrations.tokens import create_api_token, hash_key, revoke_api_tokens
from profiles.models import ClientProfile, Contact, Provider

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(staff_user):
    profile = ClientProfile.objects.create(
        contact=Contact.objects.create(phone_number="+15551230001"),
        provider=Provider.META,
        external_id="15551230001",
        phone_number="+15551230001",
    )
    conversation = Conversation.objects.create(
        profile=profile,
        channel=Channel.META_WHATSAPP,
        business_address="110000000000001",
        last_customer_message_at=timezone.now(),
    )
    Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.INBOUND,
        author=Message.Author.CUSTOMER,
        text="hello",
        provider=Provider.META,
        status=Message.Status.HANDLED,
    )
    return conversation


@pytest.fixture
def schema(staff_client) -> dict:
    response = staff_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def test_the_schema_is_valid_openapi_3_and_names_each_operations_scope(schema):
    # Imported here: 0.3 s of CPU that every xdist worker would pay at collection, one test uses it.
    from openapi_spec_validator import validate

    validate(schema)

    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["apiToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["apiToken"]["description"],
    }
    operations = [op for methods in schema["paths"].values() for op in methods.values()]
    assert len(operations) == 16
    # The live inbox's own operations (no scope) serve staff sessions only.
    assert "/api/conversations/{conversation_id}/notes/" not in schema["paths"]
    assert "/api/conversations/{conversation_id}/assign/" not in schema["paths"]
    assert {op["x-required-scope"] for op in operations} == set(Scope.values)


def test_the_docs_page_loads_swagger_ui_from_this_server(staff_client, client):
    page = staff_client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "<script>" not in html  # the CSP forbids inline script: the split view serves it as a file
    assert client.get("/api/docs/").status_code == 403


def _request_for(path: str, method: str, conversation: Conversation, message: Message):
    contact = conversation.profile.contact
    # A split needs a second identity of the contact, a merge another contact: fresh for each call.
    sibling = ClientProfile.objects.create(contact=contact, provider=Provider.TWILIO, external_id=uuid.uuid4().hex)
    url = (
        path.replace("{conversation_id}", str(conversation.pk))
        .replace("{contact_id}", str(contact.pk))
        .replace("{identity_id}", str(sibling.pk))
    )
    assert not re.search(r"{\w+}", url), url
    bodies = {
        "/send/": {"text": "Hello from the CRM"},
        "/template/": {"name": "order_update", "language": "en_US", "parameters": ["42"]},
        "/read/": {"up_to_message_id": message.pk},
        "/messages/": {"text": "Your order shipped"},
    }
    body = next((value for suffix, value in bodies.items() if url.endswith(suffix)), {})
    if url == f"/api/contacts/{contact.pk}/":
        body = {"company": "Acme"}
    if url.endswith("/merge/"):
        body = {"contact_id": Contact.objects.create().pk}
    if url.endswith("/search/"):
        url += "?q=hello"
    return url, method, body


def _call(client, url: str, method: str, body: dict, headers: dict):
    if method == "get":
        return client.get(url, **headers)
    return getattr(client, method)(url, data=body, content_type="application/json", **headers)


def test_each_documented_operation_takes_its_scope_refuses_the_others_and_a_revoked_token(
    client, schema, conversation, staff_user, graph_ok
):
    message = conversation.messages.get()
    checked = 0
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            scope = operation["x-required-scope"]
            url, method, body = _request_for(path, method, conversation, message)
            # Held by the token's staff member before each call, so writing is allowed.
            Conversation.objects.filter(pk=conversation.pk).update(mode=Conversation.Mode.HUMAN, assigned_to=staff_user)
            _, allowed = create_api_token(name=f"{scope} only", user=staff_user, scopes=[scope], created_by=None)
            _, others = create_api_token(
                name="all but", user=staff_user, scopes=[s for s in Scope.values if s != scope], created_by=None
            )
            revoked, revoked_key = create_api_token(
                name="revoked", user=staff_user, scopes=Scope.values, created_by=None
            )
            revoke_api_tokens(token_ids=[revoked.pk], revoked_by=None)

            response = _call(client, url, method, body, bearer(allowed))
            assert response.status_code < 300, (method, url, response.status_code, response.content[:300])
            assert _call(client, url, method, body, bearer(others)).status_code == 403, (method, url)
            refused = _call(client, url, method, body, bearer(revoked_key))
            assert refused.status_code == 401, (method, url)
            assert refused["WWW-Authenticate"].startswith("Bearer")
            checked += 1
    assert checked == 16


def test_tokens_are_stored_as_hashes_only(staff_user):
    token, key = create_api_token(name="CRM", user=staff_user, scopes=[Scope.READ_CONVERSATIONS], created_by=None)

    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert key not in str(stored)
    assert stored["key_hash"] == hash_key(key)
    assert key.startswith(stored["prefix"]) and len(stored["prefix"]) < 12


def test_a_token_of_a_staff_member_who_left_is_refused(client, staff_user):
    _, key = create_api_token(name="CRM", user=staff_user, scopes=[Scope.READ_CONVERSATIONS], created_by=None)
    staff_user.is_active = False
    staff_user.save()

    assert client.get("/api/conversations/", **bearer(key)).status_code == 401


def test_a_token_needs_no_csrf_token_and_a_session_without_one_is_refused(conversation, staff_user):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    _, key = create_api_token(name="CRM", user=staff_user, scopes=[Scope.TAKE_OVER], created_by=None)
    url = f"/api/conversations/{conversation.pk}/takeover/"

    assert browser.post(url, **bearer(key)).status_code == 200
    browser.force_login(staff_user)
    assert browser.post(url).status_code == 403


def test_requests_past_the_rate_limit_are_refused_per_token(client, staff_user, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    # DRF reads the rates once, into the class: set there for this test only.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"api_token": "3/min"})
    _, first = create_api_token(name="busy", user=staff_user, scopes=[Scope.READ_CONVERSATIONS], created_by=None)
    _, second = create_api_token(name="quiet", user=staff_user, scopes=[Scope.READ_CONVERSATIONS], created_by=None)

    codes = [client.get("/api/conversations/", **bearer(first)).status_code for _ in range(4)]

    assert codes == [200, 200, 200, 429]
    assert client.get("/api/conversations/", **bearer(second)).status_code == 200


def test_a_text_to_a_contact_outside_the_24_hour_window_is_refused_and_a_template_goes(
    client, conversation, staff_user, graph_ok
):
    Conversation.objects.filter(pk=conversation.pk).update(
        last_customer_message_at=timezone.now() - timedelta(hours=25)
    )
    _, key = create_api_token(name="CRM", user=staff_user, scopes=[Scope.SEND_MESSAGES], created_by=None)
    url = f"/api/contacts/{conversation.profile.contact_id}/messages/"

    text = client.post(url, {"text": "Hi again"}, content_type="application/json", **bearer(key))
    template = client.post(
        url,
        {"template": {"name": "order_update", "language": "en_US", "parameters": ["42"]}},
        content_type="application/json",
        **bearer(key),
    )
    both = client.post(
        url, {"text": "x", "template": {"name": "a", "language": "en"}}, content_type="application/json", **bearer(key)
    )

    assert text.status_code == 409
    assert text.json()["code"] == "window_closed"
    assert template.status_code == 201
    assert template.json()["status"] == "sent"
    assert both.status_code == 400
    assert (
        client.post(
            "/api/contacts/999999/messages/", {"text": "x"}, content_type="application/json", **bearer(key)
        ).status_code
        == 404
    )
