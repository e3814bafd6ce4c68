"""Two-factor login: who must give it, setting it up, codes from the app and recovery codes,
turning it off and an administrator's reset."""

from __future__ import annotations

import re
from base64 import b32decode
from datetime import timedelta

import pytest
from django.contrib.auth import SESSION_KEY, get_user_model
from django.core.management import call_command
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import SecurityEvent, TwoFactorSetupCode
from accounts.roles import ADMINISTRATOR, AGENT, DATA_OFFICER, SUPERVISOR
from accounts.tests.helpers import code_for, log_in, make_staff
from accounts.two_factor import issue_setup_code

pytestmark = pytest.mark.django_db


def give_setup_code(client, user) -> None:
    """The set-up code an Administrator issued to `user`, typed on the set-up page."""
    code = issue_setup_code(user=user, by=None)
    page = client.post("/account/two-factor/", {"action": "setup_code", "code": code.lower()}, follow=True)
    assert 'id="totp-secret"' in page.content.decode()  # the key, shown only now


def set_up_app(client) -> tuple[bytes, list[str]]:
    """What a person does on the set-up page: the set-up code where their role needs one, then
    read the key, type the app's code."""
    page = client.get("/account/two-factor/").content.decode()
    if 'id="setup-code-form"' in page:
        give_setup_code(client, get_user_model().objects.get(pk=client.session[SESSION_KEY]))
        page = client.get("/account/two-factor/").content.decode()
    secret = re.search(r'<code id="totp-secret">([A-Z2-7=]+)</code>', page).group(1)
    key = b32decode(secret)
    done = client.post("/account/two-factor/", {"action": "confirm", "code": code_for(key)})
    assert done.status_code == 200, done.content
    codes = re.findall(r"<li><code>([a-z2-7]+)</code></li>", done.content.decode())
    return key, codes


def log_in_again(client, user) -> None:
    """A new session after the password alone: a code is owed when the app is set up."""
    client.logout()
    client.force_login(user)


@pytest.mark.parametrize("role", [SUPERVISOR, DATA_OFFICER, ADMINISTRATOR])
def test_roles_that_need_a_second_factor_are_sent_to_set_it_up(client, role):
    log_in(client, make_staff("someone", role), second_factor=False)

    page = client.get("/admin/")
    api = client.get("/api/conversations/")

    assert page.status_code == 302 and page["Location"] == "/account/two-factor/?next=%2Fadmin%2F"
    assert api.status_code == 403


def test_an_agent_works_without_a_second_factor_unless_the_setting_requires_it(client, settings):
    log_in(client, make_staff("agent", AGENT), second_factor=False)
    assert client.get("/live/").status_code == 200

    settings.STAFF_TWO_FACTOR_REQUIRED = True

    assert client.get("/live/")["Location"].startswith("/account/two-factor/")
    assert client.get("/api/conversations/").status_code == 403


def test_setting_up_the_app_turns_it_on_verifies_the_session_and_gives_ten_recovery_codes(client):
    supervisor = make_staff("sup", SUPERVISOR)
    log_in(client, supervisor, second_factor=False)

    _, codes = set_up_app(client)

    assert len(codes) == 10 and len(set(codes)) == 10
    assert TOTPDevice.objects.get(user=supervisor).confirmed
    assert client.get("/live/").status_code == 200
    assert SecurityEvent.objects.filter(action="two_factor.enabled", actor=supervisor).exists()


def test_a_wrong_code_does_not_turn_it_on(client):
    supervisor = make_staff("sup", SUPERVISOR)
    log_in(client, supervisor, second_factor=False)
    give_setup_code(client, supervisor)

    page = client.post("/account/two-factor/", {"action": "confirm", "code": "000000"})

    assert "not valid" in page.content.decode()
    assert not TOTPDevice.objects.filter(user=supervisor, confirmed=True).exists()
    assert client.get("/live/").status_code == 302


def test_a_new_session_of_someone_with_the_app_must_give_a_code_first(client, settings):
    # django-otp waits FACTOR * 2^(failures - 1) s after a failure: a minute here, so "too soon"
    # holds however long a busy machine takes between the two attempts (with 1 s it did not).
    settings.OTP_TOTP_THROTTLE_FACTOR = 60
    agent = make_staff("agent", AGENT)
    log_in(client, agent, second_factor=False)
    key, _ = set_up_app(client)
    log_in_again(client, agent)

    assert client.get("/live/")["Location"] == "/account/verify/?next=%2Flive%2F"
    wrong = client.post("/account/verify/", {"code": "123456", "next": "/live/"})
    assert "That code is not valid." in wrong.content.decode()
    too_soon = client.post("/account/verify/", {"code": code_for(key, steps_ahead=1), "next": "/live/"})
    assert "wait a few seconds" in too_soon.content.decode()  # django-otp's delay after a failure
    TOTPDevice.objects.filter(user=agent).update(throttling_failure_timestamp=timezone.now() - timedelta(seconds=61))
    right = client.post("/account/verify/", {"code": code_for(key, steps_ahead=1), "next": "/live/"})

    assert right["Location"] == "/live/"
    assert client.get("/live/").status_code == 200
    assert SecurityEvent.objects.filter(action="login.second_factor_failed", actor=agent).count() == 1


def test_a_recovery_code_logs_in_once(client):
    supervisor = make_staff("sup", SUPERVISOR)
    log_in(client, supervisor, second_factor=False)
    _, codes = set_up_app(client)
    for attempt in range(2):
        log_in_again(client, supervisor)
        response = client.post("/account/verify/", {"code": codes[0].upper(), "next": "/admin/"})
        if attempt == 0:
            assert response["Location"] == "/admin/"
        else:
            assert response.status_code == 200 and "That code is not valid." in response.content.decode()
    assert StaticToken.objects.filter(device__user=supervisor).count() == 9


def test_an_offsite_next_is_not_followed(client):
    supervisor = make_staff("sup", SUPERVISOR)
    log_in(client, supervisor, second_factor=False)
    _, codes = set_up_app(client)
    log_in_again(client, supervisor)

    response = client.post("/account/verify/", {"code": codes[1], "next": "https://evil.example/"})

    assert response["Location"] == "/admin/"


def test_turning_it_off_needs_a_code_and_a_role_that_needs_it_sets_it_up_again(client):
    supervisor = make_staff("sup", SUPERVISOR)
    log_in(client, supervisor, second_factor=False)
    _, codes = set_up_app(client)

    refused = client.post("/account/two-factor/", {"action": "turn_off", "code": "999999"})
    assert "not valid" in refused.content.decode() and TOTPDevice.objects.filter(user=supervisor).exists()
    client.post("/account/two-factor/", {"action": "turn_off", "code": codes[2]})

    assert not TOTPDevice.objects.filter(user=supervisor).exists()
    assert not StaticToken.objects.filter(device__user=supervisor).exists()
    assert SecurityEvent.objects.filter(action="two_factor.disabled", actor=supervisor).exists()


def test_an_administrator_resets_a_lost_phone_and_the_user_sets_it_up_again(client):
    supervisor = make_staff("sup", SUPERVISOR)
    log_in(client, supervisor, second_factor=False)
    set_up_app(client)
    administrator = make_staff("root", ADMINISTRATOR)
    admin_client = log_in(type(client)(), administrator)

    reset = admin_client.post(
        "/admin/auth/user/", {"action": "reset_second_factor", "_selected_action": [supervisor.pk]}, follow=True
    )

    assert not TOTPDevice.objects.filter(user=supervisor).exists()
    log_in_again(client, supervisor)
    assert client.get("/admin/")["Location"].startswith("/account/two-factor/")
    event = SecurityEvent.objects.get(action="two_factor.disabled", target=f"auth.user #{supervisor.pk}")
    assert event.actor == administrator
    # The reset gives the set-up code the user needs to set up their new phone.
    [code] = re.findall(r"set-up code of sup, .*?: ([A-Z2-9-]{14})\.", reset.content.decode())
    client.post("/account/two-factor/", {"action": "setup_code", "code": code})
    assert 'id="totp-secret"' in client.get("/account/two-factor/").content.decode()


def test_renewed_recovery_codes_replace_the_old_ones(client):
    agent = make_staff("agent", AGENT)
    log_in(client, agent, second_factor=False)
    _, old = set_up_app(client)

    page = client.post("/account/two-factor/", {"action": "renew_codes"}).content.decode()
    new = re.findall(r"<li><code>([a-z2-7]+)</code></li>", page)

    assert len(new) == 10 and not set(new) & set(old)
    assert set(StaticToken.objects.filter(device__user=agent).values_list("token", flat=True)) == set(new)


def test_a_password_alone_cannot_renew_the_recovery_codes_or_turn_it_off(client):
    supervisor = make_staff("sup", SUPERVISOR)
    log_in(client, supervisor, second_factor=False)
    _, codes = set_up_app(client)
    log_in_again(client, supervisor)

    renew = client.post("/account/two-factor/", {"action": "renew_codes"})
    turn_off = client.post("/account/two-factor/", {"action": "turn_off", "code": "123456"})

    assert renew.status_code == turn_off.status_code == 302
    assert renew["Location"].startswith("/account/verify/")
    assert set(StaticToken.objects.filter(device__user=supervisor).values_list("token", flat=True)) == set(codes)
    assert TOTPDevice.objects.filter(user=supervisor, confirmed=True).exists()


def test_a_password_alone_cannot_set_up_an_app_where_two_factor_is_required(client):
    # Someone with a stolen password, on an account that never set up its app.
    supervisor = make_staff("sup", SUPERVISOR)
    log_in(client, supervisor, second_factor=False)

    page = client.get("/account/two-factor/").content.decode()
    confirm = client.post("/account/two-factor/", {"action": "confirm", "code": "123456"}).content.decode()
    guess = client.post("/account/two-factor/", {"action": "setup_code", "code": "ABCD-EFGH-JKLM"}).content.decode()

    assert 'id="setup-code-form"' in page and 'id="totp-secret"' not in page
    assert 'id="totp-secret"' not in confirm
    assert "not valid or has expired" in guess
    assert not TOTPDevice.objects.filter(user=supervisor).exists()  # no key was even made
    failure = SecurityEvent.objects.get(action="login.second_factor_failed", actor=supervisor)
    assert failure.detail == {"step": "setup_code"}
    assert client.get("/live/").status_code == 302


def test_a_setup_code_works_once_for_its_own_user_until_it_expires(client):
    supervisor, officer = make_staff("sup", SUPERVISOR), make_staff("officer", DATA_OFFICER)
    code = issue_setup_code(user=supervisor, by=None)
    log_in(client, officer, second_factor=False)

    someone_elses = client.post("/account/two-factor/", {"action": "setup_code", "code": code})
    log_in_again(client, supervisor)
    TwoFactorSetupCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = client.post("/account/two-factor/", {"action": "setup_code", "code": code})
    TwoFactorSetupCode.objects.update(expires_at=timezone.now() + timedelta(hours=1))
    used = client.post("/account/two-factor/", {"action": "setup_code", "code": code})
    log_in_again(client, supervisor)
    again = client.post("/account/two-factor/", {"action": "setup_code", "code": code})

    assert "not valid or has expired" in someone_elses.content.decode()
    assert "not valid or has expired" in expired.content.decode()
    assert used.status_code == 302
    assert "not valid or has expired" in again.content.decode()  # a new session needs a new code


def test_wrong_setup_codes_lock_the_account_out(client, settings):
    settings.AXES_FAILURE_LIMIT = 2
    supervisor = make_staff("sup", SUPERVISOR)
    log_in(client, supervisor, second_factor=False)

    client.post("/account/two-factor/", {"action": "setup_code", "code": "AAAA-AAAA-AAAA"})
    locked = client.post("/account/two-factor/", {"action": "setup_code", "code": "BBBB-BBBB-BBBB"})

    assert locked.status_code == 429
    assert client.get("/account/two-factor/")["Location"].startswith("/admin/login/")  # logged out


def test_an_administrator_issues_a_setup_code_in_the_admin_and_it_is_audited(client):
    supervisor, administrator = make_staff("sup", SUPERVISOR), make_staff("root", ADMINISTRATOR)
    admin_client = log_in(type(client)(), administrator)

    page = admin_client.post(
        "/admin/auth/user/", {"action": "issue_setup_code", "_selected_action": [supervisor.pk]}, follow=True
    ).content.decode()

    [code] = re.findall(r"set-up code of sup, .*?: ([A-Z2-9-]{14})\.", page)
    event = SecurityEvent.objects.get(action="two_factor.setup_code_issued")
    assert (event.actor, event.target) == (administrator, f"auth.user #{supervisor.pk}")
    assert code not in str(event.detail) and TwoFactorSetupCode.objects.get().code_hash != code
    log_in(client, supervisor, second_factor=False)
    _, codes = set_up_app_with(client, code)
    assert len(codes) == 10 and client.get("/live/").status_code == 200


def test_an_administrator_cannot_issue_a_superusers_setup_code(client, admin_user):
    administrator = make_staff("root", ADMINISTRATOR)
    admin_client = log_in(type(client)(), administrator)

    admin_client.post("/admin/auth/user/", {"action": "issue_setup_code", "_selected_action": [admin_user.pk]})

    assert not TwoFactorSetupCode.objects.exists()


def test_the_first_administrators_setup_code_comes_from_manage_py(client, capsys):
    root = get_user_model().objects.create_superuser("root", password="correct-horse-battery-9")

    call_command("issue_two_factor_setup_code", "root")

    code = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    log_in(client, root, second_factor=False)
    _, codes = set_up_app_with(client, code)
    assert len(codes) == 10
    assert SecurityEvent.objects.get(action="two_factor.setup_code_issued").actor_label.startswith("manage.py")


def set_up_app_with(client, setup_code: str) -> tuple[bytes, list[str]]:
    assert client.post("/account/two-factor/", {"action": "setup_code", "code": setup_code}).status_code == 302
    return set_up_app(client)
