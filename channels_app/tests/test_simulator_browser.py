"""The simulator in a real browser: a customer writes, the bot answers, staff see it live."""

from __future__ import annotations

import os
import shutil

from channels_app.tests.browser_support import ARTIFACTS, NEEDS_BROWSER, enable_simulator, log_in, open_simulator_phone
from conversations.models import Message
from conversations.providers import simulator

pytestmark = NEEDS_BROWSER

README_SIMULATOR = ARTIFACTS.parents[1] / "docs" / "screenshots" / "simulator.png"


def test_a_simulated_customer_gets_a_reply_with_read_ticks_and_staff_see_it_live(
    browser_page, live_url, fake_providers, fake_openai, staff_user, settings
):
    # The simulator really POSTs to the webhook of this daphne: let it through the Graph fake.
    fake_providers.add_passthru(live_url)
    enable_simulator(settings, live_url, staff_user)
    fake_openai.answer("Of course! Our bakery opens at 7 every morning.")
    inbox = browser_page
    log_in(inbox, live_url, staff_user)  # the simulator is open to staff when DEBUG is off

    phone = open_simulator_phone(inbox, live_url, staff_user, name="Sim Tester", phone_number="+15550001111")
    phone.fill("#text", "When do you open tomorrow?")
    phone.click("#composer button[type=submit]")

    phone.locator(".msg.theirs", has_text="opens at 7").wait_for(timeout=20_000)
    phone.locator(".msg.mine[data-status=read]", has_text="When do you open").wait_for(timeout=20_000)
    phone.screenshot(path=ARTIFACTS / "10-simulator.png")

    row = inbox.locator(".conversation", has_text="Sim Tester")
    row.locator("button").click()
    inbox.locator("#messages .message.in", has_text="When do you open tomorrow?").wait_for()
    reply = inbox.locator("#messages .message.author-bot", has_text="opens at 7")
    reply.locator(".tick-read").wait_for(timeout=20_000)  # the phone read it: a signed status webhook
    inbox.screenshot(path=ARTIFACTS / "11-live-inbox-with-simulated-customer.png")

    bot_reply = Message.objects.get(author=Message.Author.BOT)
    assert bot_reply.status == Message.Status.READ
    assert bot_reply.conversation.business_address == simulator.SIMULATOR_NUMBER_ID
    assert bot_reply.provider_message_id.startswith(simulator.OUTBOUND_ID_PREFIX)
    if not README_SIMULATOR.exists() or os.environ.get("UPDATE_README_SCREENSHOT"):
        shutil.copyfile(ARTIFACTS / "10-simulator.png", README_SIMULATOR)
