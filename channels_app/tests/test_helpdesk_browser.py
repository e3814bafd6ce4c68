"""The live inbox as a helpdesk in a real browser (Debian's Chromium, Playwright, daphne):
search, triage tabs with live counts and alerts, assign, resolve/reopen, canned responses,
media, the phone-width layout and the admin at 1366 px."""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
from typing import TYPE_CHECKING

from django.contrib.auth.models import Group, Permission
from django.core.files.base import ContentFile
from django.db import connections
from PIL import Image

from accounts.roles import SUPERVISOR
from channels_app.tests.browser_support import (
    ARTIFACTS,
    NEEDS_BROWSER,
    README_SCREENSHOT,
    enable_simulator,
    log_in,
    log_in_past_second_factor,
    open_simulator_phone,
    post_webhook,
)
from conversations.models import Attachment, CannedResponse, Conversation, Message
from conversations.tests.fakes import GRAPH_MESSAGES
from conversations.tests.helpers import meta_body, meta_text

if TYPE_CHECKING:
    from playwright.sync_api import Locator, LocatorAssertions

pytestmark = NEEDS_BROWSER


def expect(locator: Locator) -> LocatorAssertions:
    """Playwright's, imported when a browser test runs (as browser_support imports Playwright):
    every xdist worker collects this module, in the quick loop too, and the import cost each
    0.15 s of CPU."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


# Records the page's desktop notifications (and says permission was granted) in place of the
# browser's, which headless Chromium cannot show.
NOTIFICATION_RECORDER = """
window.__notifications = [];
window.__permissionRequests = 0;
class RecordingNotification {
  constructor(title, options) { window.__notifications.push({ title, body: options && options.body }); }
  static requestPermission() {
    window.__permissionRequests += 1;
    RecordingNotification.permission = "granted";
    return Promise.resolve("granted");
  }
}
RecordingNotification.permission = "default";
window.Notification = RecordingNotification;
"""


def second_page(page, live_url, user, password: str):
    other = page.context.browser.new_context(viewport={"width": 1280, "height": 760}).new_page()
    other.goto(f"{live_url}/admin/login/?next=/live/")
    other.fill("#id_username", user.username)
    other.fill("#id_password", password)
    other.click("input[type=submit]")
    other.wait_for_url(f"{live_url}/live/")
    other.locator("#connection[data-state=live]").wait_for()
    return other


def wait_until(page, expression: str, timeout: float = 10) -> None:
    """Poll a JavaScript expression (wait_for_function evaluates strings, which the page's CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        page.wait_for_timeout(100)


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_search_finds_a_message_by_a_word_and_opens_it_there(browser_page, live_url, graph_ok, fake_openai, staff_user):
    page = browser_page
    log_in(page, live_url, staff_user)
    post_webhook(live_url, meta_body("text"))
    post_webhook(live_url, meta_text("My parcel to Zürich is late, tracking 4411", "wamid.parcel"))
    page.locator(".conversation", has_text="Ada Lovelace").wait_for()

    page.keyboard.press("/")
    page.keyboard.type("zürich parcel")
    hit = page.locator("#search-messages .search-hit")
    hit.wait_for()
    assert hit.locator("mark").all_inner_texts() == ["parcel", "Zürich"]

    hit.locator("button").click()
    found = page.locator("#messages .message.found", has_text="My parcel to Zürich is late")
    found.wait_for()
    assert Message.objects.get(provider_message_id="wamid.parcel").pk == int(found.get_attribute("data-message-id"))
    page.screenshot(path=ARTIFACTS / "20-search.png")


def test_a_customer_tapping_talk_to_a_person_raises_the_tab_count_and_requests_a_desktop_notification(
    browser_page, live_url, fake_providers, fake_openai, staff_user, settings
):
    fake_providers.add_passthru(live_url)
    enable_simulator(settings, live_url, staff_user)
    inbox = browser_page
    inbox.add_init_script(NOTIFICATION_RECORDER)
    log_in(inbox, live_url, staff_user)
    inbox.locator("#notify-toggle").check()
    wait_until(inbox, "window.__permissionRequests === 1")
    count = inbox.locator("[data-count=needs_person]")
    expect(inbox.locator("[data-count=needs_person]")).to_have_text("0")

    phone = open_simulator_phone(inbox, live_url, staff_user, name="Sim Asker", phone_number="+15550002222")
    phone.click("button[data-text='Talk to a person']")

    expect(inbox.locator("[data-count=needs_person]")).to_have_text("1", timeout=20_000)
    assert count.inner_text() == "1"
    wait_until(inbox, "window.__notifications.length === 1")
    assert inbox.evaluate("window.__notifications") == [{"title": "A customer asks for a person", "body": "Sim Asker"}]
    assert Conversation.objects.get().needs_human is True
    assert fake_openai.requests == []
    inbox.click("[data-view=needs_person]")
    inbox.locator(".conversation", has_text="Sim Asker").wait_for()
    inbox.screenshot(path=ARTIFACTS / "21-needs-a-person.png")


def test_assigning_to_a_colleague_shows_in_their_mine_tab_live(
    browser_page, live_url, graph_ok, fake_openai, staff_user, other_staff
):
    staff_user.groups.add(Group.objects.get(name=SUPERVISOR))  # assigning is a Supervisor's (issue 18)
    alice = browser_page
    log_in_past_second_factor(alice, live_url, staff_user)
    alice.locator("#connection[data-state=live]").wait_for()
    bob = second_page(alice, live_url, other_staff, "bob-password-123")
    bob.click("[data-view=mine]")
    bob.locator("#list-empty").wait_for()
    post_webhook(live_url, meta_body("text"))

    alice.locator(".conversation", has_text="Ada Lovelace").locator("button").click()
    alice.locator("#assign option", has_text="Bob").wait_for(state="attached")
    alice.select_option("#assign", label="Bob")

    bob.locator(".conversation", has_text="Ada Lovelace").wait_for()
    expect(bob.locator("[data-count=mine]")).to_have_text("1")
    alice.locator("#chat-holder", has_text="Bob holds this conversation.").wait_for()
    alice.locator("#messages .note", has_text="Alice Staff assigned to Bob").wait_for()
    bob.screenshot(path=ARTIFACTS / "22-assigned-to-bob.png")

    # Bob is an Agent: no assign menu (the API would refuse it), the rest of his work is there.
    bob.locator(".conversation", has_text="Ada Lovelace").locator("button").click()
    bob.locator("#chat-holder", has_text="You hold this conversation.").wait_for()
    expect(bob.locator("#assign")).to_be_hidden()
    expect(bob.locator("#resolve")).to_be_visible()
    expect(bob.locator("#hand-back")).to_be_visible()
    # Given the permission (by an administrator's request: another thread, as Playwright's event
    # loop runs in this one), his open page offers it at once, without a reload.
    assign = Permission.objects.get(content_type__app_label="conversations", codename="assign")

    def grant() -> None:
        try:
            other_staff.user_permissions.add(assign)
        finally:
            connections.close_all()

    granting = threading.Thread(target=grant)
    granting.start()
    granting.join()
    expect(bob.locator("#assign")).to_be_visible()


def test_a_resolved_conversation_leaves_the_open_tab_and_comes_back_when_the_customer_writes(
    browser_page, live_url, graph_ok, fake_openai, staff_user
):
    page = browser_page
    log_in(page, live_url, staff_user)
    post_webhook(live_url, meta_body("text"))
    row = page.locator(".conversation", has_text="Ada Lovelace")
    row.locator("button").click()
    page.locator("#messages .message.in").wait_for()

    page.keyboard.press("e")  # the resolve shortcut

    row.wait_for(state="detached")
    page.locator("#reopen").wait_for()
    expect(page.locator("[data-count=resolved]")).to_have_text("1")
    post_webhook(live_url, meta_text("Actually, one more thing", "wamid.more"))
    row.wait_for()
    page.locator("#resolve").wait_for()
    expect(page.locator("[data-count=resolved]")).to_have_text("0")
    assert Conversation.objects.get().resolved_at is None


def test_a_canned_response_is_inserted_with_a_slash_and_sent(browser_page, live_url, graph_ok, fake_openai, staff_user):
    CannedResponse.objects.create(shortcut="hours", text="We open at 9 and close at 18, Monday to Saturday.")
    CannedResponse.objects.create(shortcut="returns", text="Returns are free within 30 days.")
    page = browser_page
    log_in(page, live_url, staff_user)
    post_webhook(live_url, meta_body("text"))
    page.locator(".conversation", has_text="Ada Lovelace").locator("button").click()
    page.locator("#messages .message.in").wait_for()
    page.keyboard.press("t")  # take over
    page.locator("#chat-holder", has_text="You hold this conversation.").wait_for()

    page.click("#composer-text")
    page.keyboard.type("/ho")
    page.locator("#canned li", has_text="/hours").wait_for()
    assert page.locator("#canned li").count() == 1
    page.keyboard.press("Enter")  # inserts, does not send
    assert page.input_value("#composer-text") == "We open at 9 and close at 18, Monday to Saturday."
    page.keyboard.press("Enter")  # sends

    page.locator("#messages .message.author-staff", has_text="We open at 9").locator(".tick-sent").wait_for()
    assert graph_ok.sent(GRAPH_MESSAGES)[-1]["text"]["body"] == "We open at 9 and close at 18, Monday to Saturday."


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 80), (0, 128, 105)).save(out, "JPEG")
    return out.getvalue()


def test_an_image_and_a_voice_note_show_as_a_thumbnail_and_a_player_with_the_transcript(
    browser_page, live_url, graph_ok, fake_openai, staff_user, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    post_webhook(live_url, meta_body("text"))
    conversation = Conversation.objects.get()
    common = {"conversation": conversation, "direction": "in", "author": "customer", "status": "handled"}
    photo = Message.objects.create(**common, kind="image", text="The broken lid")
    voice = Message.objects.create(**common, kind="audio", text="")
    image = Attachment(message=photo, content_type="image/jpeg", status="stored", caption="The broken lid")
    image.file.save("lid.jpg", ContentFile(_jpeg()))
    note = Attachment(
        message=voice,
        content_type="audio/ogg",
        status="stored",
        is_voice=True,
        transcript="Is the shop open on Sunday?",
    )
    note.file.save("voice.ogg", ContentFile(b"OggS" + bytes(200)))

    page = browser_page
    log_in(page, live_url, staff_user)
    page.locator(".conversation", has_text="Ada Lovelace").locator("button").click()

    thumbnail = page.locator("#messages img.thumbnail")
    thumbnail.wait_for()
    wait_until(page, "document.querySelector('#messages img.thumbnail').naturalWidth === 120")
    page.locator("#messages audio.player").wait_for()
    page.locator("#messages .transcript", has_text="Is the shop open on Sunday?").wait_for()
    thumbnail.click()
    page.locator("#lightbox[open] img").wait_for()
    page.screenshot(path=ARTIFACTS / "23-media.png")


def test_the_phone_width_layout_has_no_horizontal_scroll(browser_page, live_url, graph_ok, fake_openai, staff_user):
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_url, staff_user)
    post_webhook(live_url, meta_text("A very long line " + "without-any-break-" * 30, "wamid.long"))
    row = page.locator(".conversation", has_text="Ada Lovelace")
    row.wait_for()
    assert no_horizontal_scroll(page)

    row.locator("button").click()
    page.locator("#messages .message.in").first.wait_for()
    assert page.locator("#conversation-list").is_hidden()
    assert no_horizontal_scroll(page)
    page.screenshot(path=ARTIFACTS / "24-phone.png")
    page.click("#back")
    row.wait_for()
    assert no_horizontal_scroll(page)


def test_the_admin_conversation_and_message_lists_fit_a_1366_pixel_screen(
    browser_page, live_url, staff_user, django_user_model
):
    from channels_app.tests.backoffice_data import make_conversations

    admin = django_user_model.objects.create_superuser("root", password="alice-password-123")
    conversations = make_conversations(30, staff=admin)
    Message.objects.filter(conversation=conversations[0], author="staff").update(text="word " * 200)
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    log_in_past_second_factor(page, live_url, admin, "/admin/conversations/conversation/")
    page.locator("#result_list").wait_for()

    assert no_horizontal_scroll(page)
    page.goto(f"{live_url}/admin/conversations/message/")
    page.locator("#result_list").wait_for()
    assert no_horizontal_scroll(page)
    page.click("#live-inbox-link")
    page.wait_for_url(f"{live_url}/live/")


def test_the_readme_screenshot_shows_the_helpdesk(browser_page, live_url, graph_ok, fake_openai, staff_user):
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    log_in(page, live_url, staff_user)
    post_webhook(live_url, meta_body("text"))
    post_webhook(live_url, meta_text("human please", "wamid.person", wa_id="15557654321", user_id="US.2"))
    page.locator(".conversation", has_text="Asked for a person").wait_for()
    page.locator(".conversation", has_text="Ada Lovelace", has_not_text="Asked for a person").locator("button").click()
    page.locator("#messages .message.in").first.wait_for()
    page.keyboard.press("t")
    page.locator("#chat-holder", has_text="You hold this conversation.").wait_for()
    page.keyboard.press("n")
    page.keyboard.type("Ada ordered twice: check the second parcel before answering.")
    page.keyboard.press("Enter")
    page.locator("#messages .message.author-private_note").wait_for()
    expect(page.locator("[data-count=needs_person]")).to_have_text("1")
    page.screenshot(path=ARTIFACTS / "25-helpdesk.png")
    if not README_SCREENSHOT.exists() or os.environ.get("UPDATE_README_SCREENSHOT"):
        shutil.copyfile(ARTIFACTS / "25-helpdesk.png", README_SCREENSHOT)


def test_staff_send_an_image_that_the_simulated_customer_receives(
    browser_page, live_url, fake_providers, fake_openai, staff_user, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    fake_providers.add_passthru(live_url)
    enable_simulator(settings, live_url, staff_user)
    inbox = browser_page
    log_in(inbox, live_url, staff_user)
    phone = open_simulator_phone(inbox, live_url, staff_user, name="Sim Photo", phone_number="+15550003333")
    phone.fill("#text", "Can you show me the new lid?")
    phone.click("#composer button[type=submit]")

    inbox.locator(".conversation", has_text="Sim Photo").locator("button").click()
    inbox.locator("#messages .message.in").wait_for(timeout=20_000)
    inbox.click("#take-over")
    inbox.locator("#chat-holder", has_text="You hold this conversation.").wait_for()
    inbox.fill("#composer-text", "Here it is")
    photo = tmp_path / "lid.jpg"
    photo.write_bytes(_jpeg())
    inbox.set_input_files("#file-input", str(photo))

    inbox.locator("#messages .message.author-staff img.thumbnail").wait_for()
    received = phone.locator(".msg.theirs", has_text="Here it is").locator("img.media")
    received.wait_for(timeout=20_000)
    wait_until(phone, "document.querySelector('.msg.theirs img.media').naturalWidth === 120")
    phone.screenshot(path=ARTIFACTS / "26-simulator-received-image.png")
    assert Message.objects.get(author="staff").kind == "image"


def test_the_list_loads_the_next_page_when_scrolled_beyond_200_conversations(
    browser_page, live_url, daphne_server, staff_user
):
    from channels_app.tests.backoffice_data import make_conversations

    make_conversations(250, staff=staff_user)
    page = browser_page
    log_in(page, live_url, staff_user)
    page.click("[data-view=all]")
    # The tab's first page is in (until then the rows are the previous tab's and do not page).
    expect(page.locator("#conversation-list")).to_have_attribute("aria-busy", "false")
    rows = page.locator("#conversation-list .conversation")
    expect(rows).to_have_count(200)
    expect(page.locator("[data-count=all]")).to_have_text("250")

    page.locator("nav.list").evaluate("list => { list.scrollTop = list.scrollHeight; }")

    expect(rows).to_have_count(250)
    ids = [int(row) for row in rows.evaluate_all("rows => rows.map(row => row.dataset.conversationId)")]
    assert len(set(ids)) == 250

    # A dropped socket re-reads the first page (a conversation that arrived meanwhile shows up)
    # and keeps the page the agent scrolled to.
    daphne_server[1].drop_all()
    page.locator("#connection[data-state=offline]").wait_for()
    (newest,) = make_conversations(1, staff=staff_user, start=250)
    page.locator("#connection[data-state=live]").wait_for(timeout=15_000)
    expect(page.locator(f"#conversation-list [data-conversation-id='{newest.pk}']")).to_have_count(1)
    expect(rows).to_have_count(251)
