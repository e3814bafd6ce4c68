"""Browser-test support: Debian's Chromium driven by Playwright, against daphne.

Daphne serves the real ASGI application (HTTP and websockets) from a thread of this process on
the test database, so the HTTP-boundary fakes (OpenAI, Graph) answer it too. Webhooks are posted
to it signed, as Meta would. Screenshots go to test-artifacts/browser/. The fixtures are
registered as a plugin by the root conftest.py: one daphne per session (Twisted's reactor cannot restart).
Consecutive browser tests of a worker share one Chromium, each in contexts of its own (cookies,
storage, windows): starting Chromium and Playwright's driver took a second of CPU per test.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from conversations.tests.helpers import meta_body, meta_signature
from systemtests.harness import free_port

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

NEEDS_BROWSER = [
    pytest.mark.slow,
    # Real commits: daphne's threads and the browser read and write through their own connections.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]


class DroppableSockets:
    """Wraps the ASGI app so a test can cut every open websocket, as a network drop would, and
    wait for the HTTP requests and websockets in flight (a closed page's last ones) before the
    tables are flushed and the next test starts: on SQLite (one shared in-memory database) a
    request still reading locks its tables, and a socket whose page closed while it connected
    still reads the database in its consumer's `connect` (an error in the next test's log)."""

    def __init__(self, application) -> None:
        self.application = application
        self.sends: list = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.requests_in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            self.loop = asyncio.get_running_loop()
            self.sends.append(send)
        if scope["type"] not in ("http", "websocket"):
            return await self.application(scope, receive, send)
        self.requests_in_flight += 1  # daphne calls the app on its one event loop thread
        try:
            return await self.application(scope, receive, send)
        finally:
            self.requests_in_flight -= 1

    def wait_for_requests(self, seconds: float = 10) -> None:
        """Until every request and socket has ended (the pages are closed by then: see browser_page)."""
        deadline = time.monotonic() + seconds
        while self.requests_in_flight and time.monotonic() < deadline:
            time.sleep(0.02)

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


def wait_for_table_locks(execute, *, many: bool = False):
    """SQLite's execute (or executemany), waiting while another connection holds the table (at
    most 10 s).

    The test database is in memory, shared between this process's connections (shared cache):
    there a statement on a table another connection is reading or writing fails at once with
    "database table is locked", where the app's SQLite file (WAL, a busy timeout: settings.py)
    lets readers read beside a writer and a writer wait for another. Daphne's threads (the
    page's requests, the webhooks and their eager tasks) meet there: a page counting or listing
    its conversations failed the bot's reply (before and after the tests' shorter waits, more
    often on a busy machine). A failed statement is undone alone: it is run again."""

    @functools.wraps(execute)
    def execute_when_unlocked(self, query, params=None):
        if many:
            params = list(params)  # a generator would be spent by the failed try
        deadline = time.monotonic() + 10
        while True:
            try:
                return execute(self, query, params) if many or params is not None else execute(self, query)
            except sqlite3.OperationalError as error:
                if "database table is locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.002)

    return execute_when_unlocked


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker):
    """One daphne for the session: Twisted's reactor cannot be restarted in a process."""
    from channels.routing import ProtocolTypeRouter
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.core.handlers.asgi import ASGIHandler
    from django.db.backends.sqlite3.base import SQLiteCursorWrapper
    from django.test.utils import override_settings

    from whatsbot_project.asgi import application

    # Middleware reads its settings once, when the handler is built: plain http in tests.
    with override_settings(SECURE_SSL_REDIRECT=False):
        http = ASGIStaticFilesHandler(ASGIHandler())
    websocket = application.application_mapping["websocket"]
    sockets = DroppableSockets(ProtocolTypeRouter({"http": http, "websocket": websocket}))
    patch = pytest.MonkeyPatch()
    if connection.vendor == "sqlite":
        patch.setattr(SQLiteCursorWrapper, "execute", wait_for_table_locks(SQLiteCursorWrapper.execute))
        patch.setattr(
            SQLiteCursorWrapper, "executemany", wait_for_table_locks(SQLiteCursorWrapper.executemany, many=True)
        )
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
    patch.undo()


@pytest.fixture
def live_url(daphne_server, settings):
    # The daphne threads hold their own connections: close them after every request so the
    # test database can be flushed and dropped.
    max_age = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 0
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    yield daphne_server[0]
    daphne_server[1].wait_for_requests()
    connection.settings_dict["CONN_MAX_AGE"] = max_age


class SharedChromium:
    """Chromium for a run of consecutive browser tests of this process, stopped after the last
    (pytest_runtest_teardown below). While it runs, Playwright's sync API keeps an event loop
    running in this thread, so Django would refuse the tests' (sync) ORM calls, the flush after
    each test included: DJANGO_ALLOW_ASYNC_UNSAFE is on exactly as long."""

    playwright = None
    browser = None

    @classmethod
    def get(cls):
        if cls.browser is None:
            sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
            cls.playwright = sync_playwright().start()
            cls.browser = cls.playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
        return cls.browser

    @classmethod
    def stop(cls) -> None:
        if cls.playwright is not None:
            cls.browser.close()
            cls.playwright.stop()
            cls.playwright = cls.browser = None
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield  # the test's fixtures are torn down (its database flushed) with Chromium still running
    if nextitem is None or "browser_page" not in getattr(nextitem, "fixturenames", ()):
        SharedChromium.stop()


@pytest.fixture
def browser_page(live_url):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser = SharedChromium.get()
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    page.dialogs = []
    page.console_errors = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    yield page
    for context in browser.contexts:  # the page's, and any the test opened (a customer's phone)
        context.close()


def post_webhook(base_url: str, body: bytes) -> int:
    """What Meta does: POST the bytes with their signature (urllib: `responses` fakes only requests)."""
    request = urllib.request.Request(
        f"{base_url}/webhooks/meta/",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)},
    )
    # The tasks are eager here: a message's webhook answers once the reply is sent (the burst
    # window, the model, the send), which took 12 s on a loaded machine.
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def delivered_status(provider_message_id: str) -> bytes:
    return meta_body("status_delivered").replace(
        b"wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5MjA1NTUwNUU5MENFM0JBNEUA", provider_message_id.encode()
    )


def log_in(page, base_url: str, user, next_url: str = "/live/") -> None:
    """`user` logs in on the login page and lands on `next_url` (the live inbox: once its socket is live)."""
    page.goto(f"{base_url}/admin/login/?next={next_url}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "alice-password-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}{next_url}")
    if next_url == "/live/":
        page.locator("#connection[data-state=live]").wait_for()


def log_in_past_second_factor(page, base_url: str, user, next_url: str = "/live/") -> None:
    """`user` (a role that needs a second factor) as if they gave it: their session as a cookie."""
    from django.test import Client

    from accounts.tests.helpers import log_in as log_in_session

    session = log_in_session(Client(), user).cookies["sessionid"].value
    page.context.add_cookies([{"name": "sessionid", "value": session, "url": base_url}])
    page.goto(f"{base_url}{next_url}")


def enable_simulator(settings, base_url: str, user) -> None:
    """The simulator as production runs it when SIMULATOR_ENABLED is set, for `user` (given its
    permission alone: a Supervisor, whose role has it, would owe a second factor), POSTing its
    webhooks to this live server."""
    from django.contrib.auth.models import Permission

    settings.SIMULATOR_ENABLED = True
    settings.SIMULATOR_WEBHOOK_URL = f"{base_url}/webhooks/meta/"
    user.user_permissions.add(Permission.objects.get(codename="use_simulator"))


def open_simulator_phone(page, base_url: str, user, *, name: str, phone_number: str):
    """A simulated customer's phone: another browser (its own cookies, a phone-sized window) on
    the simulator, signed in as `user` (see enable_simulator)."""
    phone = page.context.browser.new_context(viewport={"width": 420, "height": 760}).new_page()
    phone.goto(f"{base_url}/admin/login/?next=/simulator/")
    phone.fill("#id_username", user.username)
    phone.fill("#id_password", "alice-password-123")
    phone.click("input[type=submit]")
    phone.wait_for_url(f"{base_url}/simulator/")
    phone.fill("#customer-name", name)
    phone.fill("#customer-phone", phone_number)
    phone.click("#customer button[type=submit]")
    phone.locator("#connection", has_text="online").wait_for()
    return phone
