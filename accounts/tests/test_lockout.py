"""Throttled login (django-axes): per login name and per address, a cool-down, a generic
message, an administrator's unlock; logged without passwords."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import SecurityEvent
from accounts.roles import ADMINISTRATOR, AGENT
from accounts.tests.helpers import log_in, make_staff

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"
WRONG = "Tr0ub4dor&3-not-it"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 3


def attempt(client, username: str, password: str, ip: str = "198.51.100.7"):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_the_account_locks_after_the_limit_and_even_the_right_password_is_refused(client):
    make_staff("agent", AGENT)
    for _ in range(2):
        assert attempt(client, "agent", WRONG).status_code == 200  # the form again, generic error

    locked = attempt(client, "agent", WRONG)
    right_password = attempt(client, "agent", PASSWORD)

    assert locked.status_code == 429 and right_password.status_code == 429
    assert "Too many failed login attempts" in right_password.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_name_is_locked_from_any_address_and_the_address_for_any_name(client):
    make_staff("agent", AGENT)
    make_staff("other", AGENT)
    for i in range(3):
        attempt(client, "agent", WRONG, ip=f"198.51.100.{i}")
    assert attempt(client, "agent", PASSWORD, ip="203.0.113.9").status_code == 429

    for name in ("x1", "x2", "x3"):
        attempt(client, name, WRONG, ip="192.0.2.50")
    assert attempt(client, "other", PASSWORD, ip="192.0.2.50").status_code == 429
    assert attempt(Client(), "other", PASSWORD, ip="192.0.2.51").status_code == 302


def test_an_unknown_name_gets_the_same_answer_as_a_known_one(client):
    make_staff("agent", AGENT)

    known = attempt(client, "agent", WRONG, ip="192.0.2.1")
    unknown = attempt(client, "nobody", WRONG, ip="192.0.2.2")

    def error(response) -> str:
        return re.search(r'<p class="errornote">\s*(.*?)\s*</p>', response.content.decode(), re.S).group(1)

    assert known.status_code == unknown.status_code == 200
    assert error(known) == error(unknown)
    assert "Please enter the correct username and password" in error(known)


def test_the_lock_ends_after_the_cool_down(client):
    make_staff("agent", AGENT)
    for _ in range(3):
        attempt(client, "agent", WRONG)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    assert attempt(client, "agent", PASSWORD).status_code == 302


def test_an_administrator_sees_and_releases_a_lock(client):
    make_staff("agent", AGENT)
    for _ in range(3):
        attempt(client, "agent", WRONG)
    administrator = make_staff("root", ADMINISTRATOR)
    admin_client = log_in(Client(), administrator)
    attempts = AccessAttempt.objects.filter(username="agent")

    listed = admin_client.get("/admin/axes/accessattempt/").content.decode()
    admin_client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": list(attempts.values_list("pk", flat=True)), "post": "yes"},
    )

    assert "agent" in listed
    assert not attempts.exists()
    assert attempt(client, "agent", PASSWORD).status_code == 302
    released = SecurityEvent.objects.get(action="lockout.released")
    assert released.actor == administrator


def test_failures_and_the_lock_are_audited_and_logged_without_the_password(client, caplog):
    agent = make_staff("agent", AGENT)
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            attempt(client, "agent", WRONG)
        attempt(client, "+15551234567", WRONG, ip="192.0.2.9")
        attempt(client, WRONG, "x", ip="192.0.2.10")  # a password typed in the name field

    assert WRONG not in caplog.text
    assert "15551234567" not in caplog.text
    assert "account agent from 198.51.100.7 on /admin/login/" in caplog.text
    failed = SecurityEvent.objects.filter(action="login.failed")
    assert failed.filter(actor=agent, ip_address="198.51.100.7").count() == 3
    assert failed.filter(actor=None, actor_label="(no such account)").count() == 2
    assert SecurityEvent.objects.filter(action="login.locked_out", actor=agent).exists()
    assert not any("15551234567" in str(event.__dict__) for event in SecurityEvent.objects.all())


def waited() -> None:
    """As if the person waited out django-otp's delay after a wrong code (a retry within it is not checked)."""
    TOTPDevice.objects.update(throttling_failure_timestamp=timezone.now() - timedelta(minutes=1))


def test_wrong_second_factor_codes_count_towards_the_lock(client):
    agent = make_staff("agent", AGENT)
    log_in(client, agent)
    client.logout()
    client.force_login(agent)  # a new session: the app is set up, so a code is owed
    for _ in range(2):
        assert client.post("/account/verify/", {"code": "000000"}).status_code == 200
        waited()

    locked = client.post("/account/verify/", {"code": "000000"})

    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
