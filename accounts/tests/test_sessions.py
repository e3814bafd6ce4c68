"""Staff sessions: the idle timeout, "log out my other sessions", the password policy."""

from __future__ import annotations

import time

import httpx
import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client

from accounts.models import SecurityEvent
from accounts.roles import AGENT
from accounts.tests.helpers import log_in, make_staff

pytestmark = pytest.mark.django_db


def test_a_staff_session_idle_longer_than_the_setting_ends(client, settings):
    settings.STAFF_SESSION_IDLE_MINUTES = 30
    log_in(client, make_staff("agent", AGENT), second_factor=False)
    assert client.get("/live/").status_code == 200
    session = client.session
    session["staff_last_seen"] = int(time.time()) - 31 * 60
    session.save()

    response = client.get("/live/")

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.get("/api/conversations/").status_code == 403


def test_a_staff_session_in_use_stays(client, settings):
    settings.STAFF_SESSION_IDLE_MINUTES = 30
    log_in(client, make_staff("agent", AGENT), second_factor=False)
    session = client.session
    session["staff_last_seen"] = int(time.time()) - 29 * 60
    session.save()

    assert client.get("/live/").status_code == 200


def test_logging_out_the_other_sessions_keeps_this_one(client):
    agent = make_staff("agent", AGENT)
    laptop, phone = log_in(Client(), agent), log_in(Client(), agent)
    other_user = log_in(Client(), make_staff("bob", AGENT))
    log_in(client, agent)

    response = client.post("/account/sessions/end-others/")

    assert response.status_code == 302
    assert client.get("/live/").status_code == 200
    assert laptop.get("/live/").status_code == 302 and phone.get("/live/").status_code == 302
    assert other_user.get("/live/").status_code == 200
    assert SecurityEvent.objects.get(action="sessions.ended_others").detail == {"ended": 2}


def test_the_password_policy_refuses_short_common_and_similar_passwords(settings):
    user = make_staff("margaret", AGENT, first_name="Margaret")
    for weak in ("short-9", "password1234", "margaret1234", "123456789012"):
        with pytest.raises(ValidationError):
            validate_password(weak, user)
    validate_password("violet-cactus-harbour-42", user)


def test_the_breached_password_check_refuses_a_known_password_and_is_skipped_when_offline(caplog):
    """Have I Been Pwned faked at the HTTP boundary (httpx): a hit refuses; no network falls back
    to Django's common-password list, so a breached but uncommon password passes."""
    from pwned_passwords_django.api import PwnedPasswords
    from pwned_passwords_django.validators import PwnedPasswordsValidator

    breached = "violet-cactus-harbour-42"
    prefix, suffix = PwnedPasswords()._prepare_password(breached)
    seen = []

    def pwned(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, text=f"{suffix}:42\r\n0018A45C4D1DEF81644B54AB7F969B88D65:1")

    def offline(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no network", request=request)

    def validator(handler) -> PwnedPasswordsValidator:
        return PwnedPasswordsValidator(
            api_client=PwnedPasswords(client=httpx.Client(transport=httpx.MockTransport(handler)))
        )

    with pytest.raises(ValidationError):
        validator(pwned).validate(breached)
    assert seen == [f"https://api.pwnedpasswords.com/range/{prefix}"]  # only five hex digits leave

    validator(offline).validate(breached)
    with pytest.raises(ValidationError):
        validator(offline).validate("password123")
    assert breached not in caplog.text
