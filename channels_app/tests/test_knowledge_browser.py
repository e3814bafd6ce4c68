"""The knowledge base in a real browser (Chromium via Playwright, against daphne): staff see the
sources of an answer in the live inbox; the offline simulator answers from the demo shop."""

from __future__ import annotations

from channels_app.tests.browser_support import ARTIFACTS, NEEDS_BROWSER, enable_simulator, log_in, post_webhook
from conversations.tests.helpers import meta_text
from knowledge.models import Chunk
from knowledge.services import load_demo_knowledge

pytestmark = NEEDS_BROWSER


def test_staff_see_the_sources_of_a_bot_answer_in_the_live_inbox(
    browser_page, live_url, graph_ok, fake_openai, staff_user
):
    load_demo_knowledge()
    italy = Chunk.objects.get(article__slug="shipping-en", heading="Delivery times in Italy")
    fake_openai.answer(f"Deliveries within Italy take 1 to 2 working days. [K{italy.pk}]")
    page = browser_page
    log_in(page, live_url, staff_user)

    assert post_webhook(live_url, meta_text("How long does shipping to Italy take?", "wamid.kb1")) == 200
    page.locator(".conversation", has_text="Ada Lovelace").locator("button").click()

    bubble = page.locator("#messages .message.author-bot", has_text="1 to 2 working days")
    source = bubble.locator(".sources a")
    source.wait_for()
    assert bubble.locator(".sources").inner_text().startswith("Sources: ")
    assert source.inner_text() == "Shipping and delivery > Delivery times in Italy"
    assert source.get_attribute("href") == f"/admin/knowledge/article/{italy.article_id}/change/"
    assert "[K" not in bubble.inner_text()
    page.screenshot(path=ARTIFACTS / "20-knowledge-sources.png")


def test_the_offline_simulator_answers_from_the_demo_knowledge_base(
    browser_page, live_url, fake_providers, fake_openai, staff_user, settings
):
    fake_providers.add_passthru(live_url)  # the simulator POSTs to this daphne's webhook
    enable_simulator(settings, live_url, staff_user)
    settings.OPENAI_API_KEY = ""
    load_demo_knowledge()
    phone = browser_page
    log_in(phone, live_url, staff_user, next_url="/simulator/")
    phone.locator("#offline-banner").wait_for()
    phone.fill("#customer-name", "Offline Tester")
    phone.fill("#customer-phone", "+15550002222")
    phone.click("#customer button[type=submit]")
    phone.locator("#connection", has_text="online").wait_for()

    phone.fill("#text", "How long does shipping to Italy take?")
    phone.click("#composer button[type=submit]")
    answer = phone.locator(".msg.theirs", has_text="Deliveries within Italy take 1")
    answer.wait_for(timeout=20_000)
    assert answer.inner_text().startswith("[offline responder]")

    phone.fill("#text", "Who won the football match last night?")
    phone.click("#composer button[type=submit]")
    phone.locator(".msg.theirs", has_text="I don't know the answer").wait_for(timeout=20_000)
    phone.screenshot(path=ARTIFACTS / "21-offline-simulator.png")
    assert fake_openai.requests == []
