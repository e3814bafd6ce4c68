"""Staff see tool calls and costs in the admin."""

from __future__ import annotations

from decimal import Decimal

import pytest

from conversations.models import Conversation, Message, ToolCall
from conversations.tests.helpers import meta_text, post_meta

pytestmark = pytest.mark.django_db


def test_the_conversation_page_shows_its_tool_calls_agent_and_cost(
    client, admin_client, graph_ok, fake_openai, settings
):
    settings.MODEL_PRICES = {"gpt-test": {"input": 1000, "output": 4000}}
    post_meta(client, meta_text("Where is order 1001?", "wamid.adm1"))
    conversation = Conversation.objects.get()
    inbound = Message.objects.get(author=Message.Author.CUSTOMER)
    ToolCall.objects.create(
        conversation=conversation,
        message=inbound,
        agent_name="shipping",
        tool_name="lookup_order",
        arguments={"order_id": "1001"},
        status=ToolCall.Status.TIMEOUT,
        latency_ms=5000,
        result="Error: the service did not answer in time.",
    )

    page = admin_client.get(f"/admin/conversations/conversation/{conversation.pk}/change/").content.decode()
    listing = admin_client.get("/admin/conversations/toolcall/").content.decode()
    profile = admin_client.get(f"/admin/profiles/contact/{conversation.profile.contact_id}/change/").content.decode()

    assert "lookup_order" in page and "Timed out" in page and "did not answer in time" in page
    assert "0.0700 USD" in page  # the reply: (42 x 1000 + 7 x 4000) / 1e6
    assert "lookup_order" in listing and "shipping" in listing
    assert "0.0700 USD" in profile
    assert Message.objects.get(author=Message.Author.BOT).cost == Decimal("0.070000")
