"""The live inbox shows people, not provider identities: in Chromium, the same number writing on
WhatsApp and by SMS is one contact, with a badge per channel and both conversations in the panel."""

from __future__ import annotations

import urllib.request
from urllib.parse import urlencode

from channels_app.tests.browser_support import ARTIFACTS, NEEDS_BROWSER, log_in, post_webhook
from conversations.tests.helpers import PUBLIC_BASE_URL, meta_body, twilio_params, twilio_signature
from profiles.models import Contact

pytestmark = NEEDS_BROWSER


def post_twilio_webhook(base_url: str, params: dict[str, str]) -> int:
    """What Twilio does: a form POST signed over the public URL it was configured with."""
    path = "/webhooks/twilio/"
    request = urllib.request.Request(
        f"{base_url}{path}",
        data=urlencode(params).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(PUBLIC_BASE_URL + path, params),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_two_identities_with_the_same_number_show_as_one_contact(
    browser_page, live_url, graph_ok, twilio_ok, fake_openai, staff_user
):
    page = browser_page
    missing = []
    page.on("response", lambda response: response.status == 404 and missing.append(response.url))
    log_in(page, live_url, staff_user)

    assert post_webhook(live_url, meta_body("text")) == 200  # WhatsApp via Meta, +15551234567
    rows = page.locator("#conversation-list .conversation")
    rows.first.locator(".tag.channel", has_text="WhatsApp (Meta)").wait_for()
    sms = {**twilio_params("sms_inbound"), "Body": "And by SMS: is my order 12345 on its way?"}
    assert post_twilio_webhook(live_url, sms) == 200  # SMS via Twilio, the same number

    row = page.locator(".conversation", has_text="Ada Lovelace")
    row.locator(".tag.channel", has_text="SMS (Twilio)").wait_for()
    row.locator(".preview", has_text="Hello! How can I help?").wait_for()  # the newest, the SMS reply
    assert rows.count() == 1  # one person, one row
    contact = Contact.objects.get()
    assert row.get_attribute("data-contact-id") == str(contact.pk)
    assert row.locator(".tag.channel").all_inner_texts() == ["WhatsApp (Meta)", "SMS (Twilio)"]
    assert row.locator(".badge").inner_text() == "2"  # unread of both conversations

    row.locator("button").click()
    page.locator("#messages .message.in", has_text="And by SMS").wait_for()
    assert "SMS (Twilio)" in page.locator("#chat-subtitle").inner_text()
    panel = page.locator("#contact-conversations")
    other = panel.locator("a.open-conversation", has_text="WhatsApp (Meta)")
    other.wait_for()
    assert panel.locator("li").count() == 2
    assert page.locator("#contact-identities li").count() == 2
    page.screenshot(path=ARTIFACTS / "10-one-contact-two-channels.png")

    other.click()
    page.locator("#messages .message.in", has_text="Hi! What are your opening hours?").wait_for()
    assert page.locator("#messages .message.in", has_text="And by SMS").count() == 0
    panel.locator("a.open-conversation", has_text="SMS (Twilio)").wait_for()
    assert rows.count() == 1
    assert row.locator(".tag.channel.current").inner_text() == "WhatsApp (Meta)"
    assert [url for url in missing if "/api/" in url] == [], missing
    assert [error for error in page.console_errors if "Failed to load resource" not in error] == []
