"""Two-factor login and the lock-out in Chromium, against daphne (channels_app/tests/browser_support.py)."""

from __future__ import annotations

from base64 import b32decode

from django.test import Client

from accounts.roles import ADMINISTRATOR, AGENT, SUPERVISOR
from accounts.tests.helpers import code_for, log_in, make_staff
from accounts.two_factor import issue_setup_code
from channels_app.tests.browser_support import ARTIFACTS, NEEDS_BROWSER

pytestmark = NEEDS_BROWSER

PASSWORD = "correct-horse-battery-9"


def session_of(user) -> str:
    """A session that gave its password and second factor, as the Administrator's browser holds."""
    return log_in(Client(), user).cookies["sessionid"].value


def submit_password(page, base_url: str, username: str, password: str = PASSWORD, next_url: str = "/live/") -> None:
    page.goto(f"{base_url}/admin/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_load_state()


def submit_code(page, code: str) -> None:
    page.fill("#id_code", code)
    page.click("input[type=submit][value=Verify]")
    page.wait_for_load_state()


def submit_setup_code(page, code: str) -> None:
    page.fill("#id_code", code)
    page.click("#setup-code-form input[type=submit]")
    page.wait_for_load_state()


def test_a_supervisor_sets_up_the_app_then_logs_in_with_a_code_or_a_recovery_code(browser_page, live_url):
    page = browser_page
    setup_code = issue_setup_code(user=make_staff("sup", SUPERVISOR), by=make_staff("root", ADMINISTRATOR))
    make_staff("agent", AGENT)

    submit_password(page, live_url, "sup")
    page.wait_for_url(f"{live_url}/account/two-factor/?next=%2Flive%2F")
    assert "Your role needs two-factor login" in page.inner_text("#content")
    # The password alone shows no key: first the set-up code an Administrator issued.
    assert page.locator("#totp-secret").count() == 0
    submit_setup_code(page, "ABCD-EFGH-JKLM")
    assert "not valid or has expired" in page.inner_text("#content")
    submit_setup_code(page, setup_code)
    key = b32decode(page.inner_text("#totp-secret"))
    assert page.locator(".qr-code svg").count() == 1
    page.fill("#id_code", code_for(key))
    page.click("#setup-form input[type=submit]")
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    page.screenshot(path=ARTIFACTS / "two-factor-recovery-codes.png")
    page.click("#continue")
    page.wait_for_url(f"{live_url}/live/")
    page.locator("#connection[data-state=live]").wait_for()

    page.context.clear_cookies()
    submit_password(page, live_url, "sup")
    page.wait_for_url(f"{live_url}/account/verify/?next=%2Flive%2F")
    submit_code(page, "000000")
    assert "That code is not valid." in page.inner_text("#content")
    page.wait_for_timeout(1200)  # django-otp's delay after a wrong code
    submit_code(page, code_for(key, steps_ahead=1))
    page.wait_for_url(f"{live_url}/live/")
    page.locator("#connection[data-state=live]").wait_for()

    page.context.clear_cookies()
    submit_password(page, live_url, "sup")
    submit_code(page, codes[0])
    page.wait_for_url(f"{live_url}/live/")

    # An Agent who set nothing up logs in with the password alone.
    page.context.clear_cookies()
    submit_password(page, live_url, "agent")
    page.wait_for_url(f"{live_url}/live/")
    page.locator("#connection[data-state=live]").wait_for()


def test_a_locked_out_agent_is_unlocked_by_an_administrator(browser_page, live_url, settings):
    settings.AXES_FAILURE_LIMIT = 3
    page = browser_page
    make_staff("agent", AGENT)
    administrator = make_staff("root", ADMINISTRATOR)

    for _ in range(3):
        submit_password(page, live_url, "agent", password="not-the-password")
    assert "Too many failed login attempts" in page.inner_text("body")
    submit_password(page, live_url, "agent")
    assert "Too many failed login attempts" in page.inner_text("body")
    page.screenshot(path=ARTIFACTS / "locked-out.png")

    # The Administrator is already at work (the lock-out also holds this browser's address).
    admin_context = page.context.browser.new_context()
    admin_context.add_cookies([{"name": "sessionid", "value": session_of(administrator), "url": live_url}])
    admin_page = admin_context.new_page()
    admin_page.goto(f"{live_url}/admin/axes/accessattempt/")
    assert "agent" in admin_page.inner_text("#result_list")
    admin_page.check("#action-toggle")
    admin_page.select_option("select[name=action]", "delete_selected")
    admin_page.click("button[name=index]")
    admin_page.click("input[type=submit]")  # "Yes, I'm sure"
    admin_page.locator(".messagelist .success").wait_for()

    submit_password(page, live_url, "agent")
    page.wait_for_url(f"{live_url}/live/")
