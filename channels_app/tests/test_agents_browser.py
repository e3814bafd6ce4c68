"""A hand-over between agents in a real browser (Chromium via Playwright, against daphne): staff
see the agent of each bot message, the conversation's agent and the collapsed tool calls."""

from __future__ import annotations

from agents.models import Agent
from channels_app.tests.browser_support import ARTIFACTS, NEEDS_BROWSER, log_in, post_webhook
from conversations.tests.helpers import meta_text

pytestmark = NEEDS_BROWSER


def test_staff_see_the_hand_over_to_a_specialist_in_the_live_inbox(
    browser_page, live_url, graph_ok, fake_openai, staff_user
):
    billing = Agent.objects.create(name="billing", instructions="You handle refunds.")
    triage = Agent.objects.create(name="triage", instructions="You route.", is_entry=True)
    triage.handoffs.set([billing])
    page = browser_page
    log_in(page, live_url, staff_user)

    fake_openai.answer("Hello! What can I do for you?")
    assert post_webhook(live_url, meta_text("Hi", "wamid.h1")) == 200
    page.locator(".conversation", has_text="Ada Lovelace").locator("button").click()
    first = page.locator("#messages .message.author-bot", has_text="What can I do for you")
    first.wait_for()
    assert first.locator(".by").inner_text() == "Bot · triage"

    fake_openai.call_tool("transfer_to_billing", {}, call_id="call_h")
    fake_openai.answer("Billing here: your refund left yesterday.")
    assert post_webhook(live_url, meta_text("Where is my refund?", "wamid.h2")) == 200

    second = page.locator("#messages .message.author-bot", has_text="your refund left yesterday")
    second.wait_for()
    assert second.locator(".by").inner_text() == "Bot · billing"
    calls = second.locator("details.tool-calls")
    assert calls.locator("summary").inner_text() == "1 tool call · transfer_to_billing"
    assert not calls.locator(".tool-call").is_visible()  # collapsed until staff open it
    calls.locator("summary").click()
    assert "triage: transfer_to_billing handover" in calls.locator(".tool-call").inner_text()
    page.locator("#chat-subtitle", has_text="agent: billing").wait_for()
    page.screenshot(path=ARTIFACTS / "30-agent-hand-over.png")
    # No script error (a missing favicon is only a failed load).
    assert [error for error in page.console_errors if not error.startswith("Failed to load resource")] == []
