"""The live inbox in a real browser: Debian's Chromium driven by Playwright, against daphne
(fixtures in browser_support.py)."""

from __future__ import annotations

import io
import os

import pytest
from django.core.management import call_command

from channels_app.tests.browser_support import (
    ARTIFACTS,
    NEEDS_BROWSER,
    XSS,
    delivered_status,
    log_in,
    post_webhook,
)
from conversations.models import Message
from conversations.tests.fakes import GRAPH_MESSAGES
from conversations.tests.helpers import meta_body, meta_text

pytestmark = NEEDS_BROWSER


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

    page.click("#hand-back")
    page.locator("#chat-holder", has_text="The bot answers.").wait_for()
    messages.locator(".note", has_text="Alice Staff handed back to the bot").wait_for()
    page.screenshot(path=ARTIFACTS / "03-handed-back.png")

    assert page.dialogs == []  # the <img onerror> never ran
    assert [error for error in page.console_errors if "Content Security Policy" in error] == []


def bot_answered_ada(page, live_url: str):
    """Ada writes and the bot answers her; her row in the inbox once the answer is its preview."""
    assert post_webhook(live_url, meta_body("text")) == 200
    row = page.locator(".conversation", has_text="Ada Lovelace")
    row.locator(".preview", has_text="Hello! How can I help?").wait_for()
    return row


def test_a_status_that_arrives_while_the_page_loads_the_conversation_is_not_undone_by_the_load(
    browser_page, live_url, graph_ok, fake_openai, staff_user
):
    page = browser_page
    log_in(page, live_url, staff_user)
    row = bot_answered_ada(page, live_url)
    reply = Message.objects.get(author=Message.Author.BOT)
    assert reply.status == Message.Status.SENT

    # The page's messages request is held, answered by the server (`sent`), then the delivered
    # status reaches the page as a live event before that stale answer does.
    held = []
    page.route("**/messages/?after=0", lambda route: held.append(route))
    row.locator("button").click()
    while not held:
        page.wait_for_timeout(20)
    stale = held[0].fetch()
    assert post_webhook(live_url, delivered_status(reply.provider_message_id)) == 200
    bubble = page.locator("#messages .message.author-bot", has_text="Hello! How can I help?")
    bubble.locator(".tick-delivered").wait_for()
    held[0].fulfill(response=stale)

    page.locator("#messages .message.in", has_text="Hi! What are your opening hours?").wait_for()
    assert bubble.locator(".tick").get_attribute("class") == "tick tick-delivered"


def test_a_status_sent_before_the_socket_hears_the_conversation_is_fetched_once_it_does(
    browser_page, live_url, graph_ok, fake_openai, staff_user
):
    page = browser_page
    servers, held_opens = [], []

    def hold_open_actions(page_socket):
        server = page_socket.connect_to_server()
        servers.append(server)
        page_socket.on_message(lambda frame: held_opens.append(frame) if '"open"' in frame else server.send(frame))

    # The page's `open` waits here, as behind a busy server: the page fetches the conversation first.
    page.route_web_socket("**/ws/live/", hold_open_actions)
    log_in(page, live_url, staff_user)
    row = bot_answered_ada(page, live_url)
    row.locator("button").click()
    bubble = page.locator("#messages .message.author-bot", has_text="Hello! How can I help?")
    bubble.locator(".tick-sent").wait_for()
    assert len(held_opens) == 1

    # No page hears the conversation yet: this status's event reaches nobody.
    reply = Message.objects.get(author=Message.Author.BOT)
    assert post_webhook(live_url, delivered_status(reply.provider_message_id)) == 200
    servers[-1].send(held_opens[0])  # the server hears the `open` only now
    bubble.locator(".tick-delivered").wait_for(timeout=10_000)


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


# A command in another process reaches open pages through Redis (channel layer and presence
# cache); the in-memory layer reaches only its own event loop.
@pytest.mark.redis
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL: pages hear other processes through Redis")
def test_a_person_erased_from_the_command_line_leaves_an_open_inbox_without_a_reload(
    browser_page, live_url, graph_ok, fake_openai, staff_user
):
    page = browser_page
    log_in(page, live_url, staff_user)
    assert post_webhook(live_url, meta_body("text")) == 200
    row = page.locator(".conversation", has_text="Ada Lovelace")
    row.locator("button").click()
    page.locator("#messages .message.in", has_text="Hi! What are your opening hours?").wait_for()

    call_command("gdpr_erase", "+15551234567", "--yes", stdout=io.StringIO())

    row.wait_for(state="detached")
    page.locator("#chat").wait_for(state="hidden")
    assert page.locator("#messages .message").count() == 0
    assert page.locator("body", has_text="Hi! What are your opening hours?").count() == 0
