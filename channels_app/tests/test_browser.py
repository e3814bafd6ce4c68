"""The live inbox in a real browser: Debian's Chromium driven by Playwright, against daphne.

Daphne serves the real ASGI application (HTTP and websockets) from a thread of this process on
the test database, so the HTTP-boundary fakes (OpenAI, Graph) answer it too. Webhooks are posted
to it signed, as Meta would. Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from conversations.models import Message
from conversations.tests.conftest import GRAPH_MESSAGES
from conversations.tests.helpers import meta_body, meta_signature, meta_text

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "browser"
README_SCREENSHOT = Path(settings.BASE_DIR) / "docs" / "screenshots" / "live-inbox.png"
XSS = "<img src=x onerror=alert(1)>"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


class DroppableSockets:
    """Wraps the ASGI app so a test can cut every open websocket, as a network drop would."""

    def __init__(self, application) -> None:
        self.application = application
        self.sends: list = []
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            self.loop = asyncio.get_running_loop()
            self.sends.append(send)
        return await self.application(scope, receive, send)

    def drop_all(self) -> None:
        for send in self.sends:
            future = asyncio.run_coroutine_threadsafe(send({"type": "websocket.close", "code": 4000}), self.loop)
            future.result(timeout=5)
        self.sends.clear()


class DaphneThread(threading.Thread):
    def __init__(self, application, port: int) -> None:
        super().__init__(name="daphne-live-server", daemon=True)
        self.application = application
        self.port = port

    def run(self) -> None:
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        self.server = Server(
            application=self.application,
            endpoints=build_endpoint_description_strings(host="127.0.0.1", port=self.port),
            signal_handlers=False,
            verbosity=0,
        )
        self.server.run()

    def stop(self) -> None:
        from twisted.internet import reactor

        reactor.callFromThread(reactor.stop)
        self.join(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker):
    """One daphne for the session: Twisted's reactor cannot be restarted in a process."""
    from channels.routing import ProtocolTypeRouter
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.core.handlers.asgi import ASGIHandler
    from django.test.utils import override_settings

    from whatsbot_project.asgi import application

    # Middleware reads its settings once, when the handler is built: plain http in tests.
    with override_settings(SECURE_SSL_REDIRECT=False):
        http = ASGIStaticFilesHandler(ASGIHandler())
    websocket = application.application_mapping["websocket"]
    sockets = DroppableSockets(ProtocolTypeRouter({"http": http, "websocket": websocket}))
    thread = DaphneThread(sockets, free_port())
    thread.start()
    url = f"http://127.0.0.1:{thread.port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz/", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield url, sockets
    thread.stop()


@pytest.fixture
def live_url(daphne_server, settings, monkeypatch):
    # The daphne threads hold their own connections: close them after every request so the
    # test database can be flushed and dropped.
    max_age = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 0
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    yield daphne_server[0]
    connection.settings_dict["CONN_MAX_AGE"] = max_age


@pytest.fixture
def browser_page(live_url):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.dialogs = []
        page.console_errors = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
        yield page
        browser.close()


def post_webhook(base_url: str, body: bytes) -> int:
    """What Meta does: POST the bytes with their signature (urllib: `responses` fakes only requests)."""
    request = urllib.request.Request(
        f"{base_url}/webhooks/meta/",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def delivered_status(provider_message_id: str) -> bytes:
    return meta_body("status_delivered").replace(
        b"wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5MjA1NTUwNUU5MENFM0JBNEUA", provider_message_id.encode()
    )


def log_in(page, base_url: str, user) -> None:
    page.goto(f"{base_url}/admin/login/?next=/live/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "alice-password-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/live/")
    page.locator("#connection[data-state=live]").wait_for()


def test_staff_see_a_message_arrive_take_over_reply_and_hand_back_without_reloading(
    browser_page, live_url, graph_ok, fake_openai, staff_user
):
    page = browser_page
    log_in(page, live_url, staff_user)
    page.screenshot(path=ARTIFACTS / "01-empty-inbox.png")

    assert post_webhook(live_url, meta_body("text")) == 200
    row = page.locator(".conversation", has_text="Ada Lovelace")
    row.locator(".preview", has_text="Hello! How can I help?").wait_for()
    assert row.locator(".badge").inner_text() == "1"

    row.locator("button").click()
    messages = page.locator("#messages")
    messages.locator(".message.in", has_text="Hi! What are your opening hours?").wait_for()
    messages.locator(".message.author-bot", has_text="Hello! How can I help?").wait_for()

    assert post_webhook(live_url, meta_text(XSS, "wamid.xss")) == 200
    hostile = messages.locator(".message.in .text", has_text="onerror")
    hostile.wait_for()
    assert hostile.inner_text() == XSS
    assert page.locator("#messages img").count() == 0
    row.locator(".badge").wait_for(state="detached")  # the open conversation is read as it arrives

    page.click("#take-over")
    page.locator("#chat-holder", has_text="You hold this conversation.").wait_for()
    messages.locator(".note", has_text="Alice Staff took over").wait_for()
    page.fill("#composer-text", "Hi Ada, Alice here: we open at 9.")
    page.click("#send")
    staff_bubble = messages.locator(".message.author-staff", has_text="Alice here")
    staff_bubble.locator(".tick-sent").wait_for()
    assert graph_ok.sent(GRAPH_MESSAGES)[-1]["text"]["body"] == "Hi Ada, Alice here: we open at 9."

    staff_message = Message.objects.get(author=Message.Author.STAFF)
    assert post_webhook(live_url, delivered_status(staff_message.provider_message_id)) == 200
    staff_bubble.locator(".tick-delivered").wait_for()

    page.fill("#profile-form input[name=company]", "Analytical Engines")
    page.click("#profile-form button[type=submit]")
    page.locator("#profile-status", has_text="Saved.").wait_for()
    page.screenshot(path=ARTIFACTS / "02-taken-over.png")
    if not README_SCREENSHOT.exists() or os.environ.get("UPDATE_README_SCREENSHOT"):
        # Refreshed on request only: a committed image rewritten by every run is noise in git.
        shutil.copyfile(ARTIFACTS / "02-taken-over.png", README_SCREENSHOT)

    page.click("#hand-back")
    page.locator("#chat-holder", has_text="The bot answers.").wait_for()
    messages.locator(".note", has_text="handed this conversation back").wait_for()
    page.screenshot(path=ARTIFACTS / "03-handed-back.png")

    assert page.dialogs == []  # the <img onerror> never ran
    assert [error for error in page.console_errors if "Content Security Policy" in error] == []


def test_the_page_reconnects_after_a_dropped_socket_and_catches_up(
    browser_page, live_url, daphne_server, graph_ok, fake_openai, staff_user
):
    page = browser_page
    log_in(page, live_url, staff_user)
    post_webhook(live_url, meta_body("text"))
    page.locator(".conversation", has_text="Ada Lovelace").locator("button").click()
    page.locator("#messages .message.in").wait_for()

    daphne_server[1].drop_all()
    page.locator("#connection[data-state=offline]").wait_for()
    # Arrives while the page has no socket: no event reaches it, the catch-up must fetch it.
    post_webhook(live_url, meta_text("Sent while you were offline", "wamid.offline"))

    page.locator("#connection[data-state=live]").wait_for(timeout=15_000)
    page.locator("#messages .message.in", has_text="Sent while you were offline").wait_for()
    page.screenshot(path=ARTIFACTS / "04-after-reconnect.png")
