"""seed_demo's agents and order tools, end to end: the triage agent hands over to shipping, whose
`lookup_order` calls the demo order system this app serves with DEBUG on (here through a local
server, as `make run` serves it)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from werkzeug import Response

from agents.demo import DEMO_ORDERS
from agents.models import Agent, Tool
from conversations.models import Conversation, Message, ToolCall
from conversations.tests.helpers import meta_text, post_meta

pytestmark = pytest.mark.django_db


def test_the_demo_order_endpoint_is_served_only_with_debug(client, settings):
    settings.DEBUG = False
    assert client.get("/demo/orders/1001/").status_code == 404

    settings.DEBUG = True
    assert client.get("/demo/orders/1001/").json() == {"order_id": "1001", **DEMO_ORDERS["1001"]}
    assert client.get("/demo/orders/9999/").status_code == 404
    assert client.post("/demo/orders/1002/cancel/").json() == {"order_id": "1002", "cancelled": True}


def test_seed_demo_adds_a_triage_agent_with_specialists_and_the_order_tools(admin_user, settings):
    settings.PUBLIC_BASE_URL = ""
    call_command("seed_demo", verbosity=0)
    call_command("seed_demo", verbosity=0)  # replaces, does not duplicate

    triage = Agent.objects.get(is_entry=True)
    assert triage.name == "triage"
    assert sorted(agent.name for agent in triage.handoffs.all()) == ["billing", "shipping"]
    lookup = Tool.objects.get(name="lookup_order")
    assert lookup.url_template == "http://localhost:8000/demo/orders/{order_id}/"
    assert Tool.objects.get(name="cancel_order").changes_something

    call_command("seed_demo", "--remove", verbosity=0)
    assert not Agent.objects.exists() and not Tool.objects.exists()


def test_seed_demo_keeps_the_entry_agent_staff_made(admin_user):
    Agent.objects.create(name="ours", instructions="Ours.", is_entry=True)

    call_command("seed_demo", verbosity=0)

    assert Agent.objects.get(is_entry=True).name == "ours"


def test_a_demo_conversation_shows_a_hand_over_and_a_tool_call(client, graph_ok, fake_openai, httpserver, settings):
    # The demo order system, as this app serves it with DEBUG on (daphne on localhost).
    graph_ok.add_passthru(httpserver.url_for("/"))
    settings.PUBLIC_BASE_URL = httpserver.url_for("").rstrip("/")
    settings.TOOL_PRIVATE_HOSTS = ["localhost"]
    settings.DEBUG = True
    httpserver.expect_request("/demo/orders/1001/").respond_with_handler(
        lambda request: Response(client.get(request.path).content, content_type="application/json")
    )
    call_command("seed_demo", verbosity=0)
    fake_openai.call_tool("transfer_to_shipping", {}, call_id="call_h")
    fake_openai.call_tool("lookup_order", {"order_id": "1001"}, call_id="call_l")
    fake_openai.answer("Your order 1001 shipped with DHL and arrives in 2 days.")

    post_meta(client, meta_text("Where is my order 1001?", "wamid.demo1"))

    assert Conversation.objects.get(profile__external_id__startswith="US.").current_agent.name == "shipping"
    output = fake_openai.requests[-1]["input"][-1]
    assert json.loads(output["output"]) == {
        "order_id": "1001",
        "status": "shipped",
        "carrier": "DHL",
        "tracking": "JD014600003",
        "eta": "in 2 days",
    }
    assert list(ToolCall.objects.order_by("id").values_list("agent_name", "tool_name", "status")) == [
        ("triage", "transfer_to_shipping", "handover"),
        ("shipping", "lookup_order", "ok"),
    ]
    reply = Message.objects.get(author=Message.Author.BOT, conversation__profile__external_id__startswith="US.")
    assert reply.agent_name == "shipping"
