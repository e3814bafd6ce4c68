"""Agents configured in the admin answer, and hand a conversation over to each other with a
`transfer_to_<name>` function call (fake OpenAI at the HTTP boundary)."""

from __future__ import annotations

import pytest

from agents.models import Agent, Tool
from conversations.models import Conversation, Message, ToolCall
from conversations.tests.helpers import meta_text, post_meta

pytestmark = pytest.mark.django_db

NO_ARGUMENTS = {"type": "object", "properties": {}, "additionalProperties": False}


def tool(name: str) -> Tool:
    return Tool.objects.create(
        name=name,
        description=f"The {name} tool.",
        parameters={"type": "object", "properties": {}},
        url_template=f"https://shop.example/{name}",
        allowed_hosts=["shop.example"],
    )


@pytest.fixture
def team(db):
    billing = Agent.objects.create(
        name="billing", description="payments and refunds", instructions="BILLING RULES.", model="gpt-billing"
    )
    billing.tools.set([tool("refund_status")])
    shipping = Agent.objects.create(name="shipping", instructions="SHIPPING RULES.")
    shipping.tools.set([tool("lookup_order")])
    triage = Agent.objects.create(name="triage", instructions="TRIAGE RULES.", is_entry=True)
    triage.handoffs.set([billing, shipping])
    billing.handoffs.set([triage])
    return triage, billing, shipping


def names(request: dict) -> list[str]:
    return [tool["name"] for tool in request.get("tools", [])]


def test_the_entry_agent_answers_with_its_instructions_tools_and_model(client, graph_ok, fake_openai, team):
    post_meta(client, meta_text("Hello", "wamid.a1"))

    [request] = fake_openai.requests
    assert request["instructions"].startswith("TRIAGE RULES.")
    assert request["model"] == "gpt-test"  # its model is empty: OPENAI_MODEL
    assert names(request) == ["request_human", "save_customer_details", "transfer_to_billing", "transfer_to_shipping"]
    transfer = request["tools"][2]
    assert transfer["parameters"] == NO_ARGUMENTS
    assert "payments and refunds" in transfer["description"]
    reply = Message.objects.get(author=Message.Author.BOT)
    assert reply.agent_name == "triage"


def test_a_hand_over_changes_the_agent_of_this_and_the_next_reply(client, graph_ok, fake_openai, team):
    _, billing, _ = team
    fake_openai.call_tool("transfer_to_billing", {}, call_id="call_t")
    fake_openai.answer("Billing here: your refund is on its way.", input_tokens=100, output_tokens=10)

    post_meta(client, meta_text("Where is my refund?", "wamid.a2"))

    first, second = fake_openai.requests
    assert second["instructions"].startswith("BILLING RULES.")
    assert "TRIAGE RULES." not in second["instructions"]
    assert second["model"] == "gpt-billing"
    assert names(second) == ["request_human", "save_customer_details", "refund_status", "transfer_to_triage"]
    assert second["input"] == first["input"]  # the same customer turn, answered by the new agent
    conversation = Conversation.objects.get()
    assert conversation.current_agent == billing
    reply = Message.objects.get(author=Message.Author.BOT)
    assert (reply.text, reply.agent_name) == ("Billing here: your refund is on its way.", "billing")
    assert (reply.input_tokens, reply.output_tokens) == (42 + 100, 7 + 10)  # both calls counted
    [handover] = ToolCall.objects.all()
    assert (handover.tool_name, handover.agent_name, handover.status) == ("transfer_to_billing", "triage", "handover")

    fake_openai.answer("Anything else about billing?")
    post_meta(client, meta_text("Thanks", "wamid.a3"))

    third = fake_openai.requests[2]
    assert third["instructions"].startswith("BILLING RULES.")
    assert Message.objects.filter(author=Message.Author.BOT).last().agent_name == "billing"


def test_agents_that_keep_handing_over_still_answer_within_the_cap(client, graph_ok, fake_openai, team):
    fake_openai.call_tool("transfer_to_billing", {}, call_id="call_1")
    fake_openai.call_tool("transfer_to_triage", {}, call_id="call_2")
    fake_openai.answer("Triage here.")

    post_meta(client, meta_text("Help", "wamid.a4"))

    assert len(fake_openai.requests) == 3
    # The third agent may not hand over again: no transfer functions.
    assert not [name for name in names(fake_openai.requests[2]) if name.startswith("transfer_to_")]
    assert Message.objects.get(author=Message.Author.BOT).text == "Triage here."


def test_a_deleted_current_agent_falls_back_to_the_entry_agent(client, graph_ok, fake_openai, team):
    _, billing, _ = team
    fake_openai.call_tool("transfer_to_billing", {}, call_id="call_1")
    post_meta(client, meta_text("Refund?", "wamid.a5"))
    billing.delete()

    post_meta(client, meta_text("Hello again", "wamid.a6"))

    assert fake_openai.requests[-1]["instructions"].startswith("TRIAGE RULES.")


def test_without_agents_the_bot_instructions_file_is_the_bot(client, graph_ok, fake_openai, settings, tmp_path):
    path = tmp_path / "instructions.md"
    path.write_text("FILE INSTRUCTIONS.", encoding="utf-8")
    settings.BOT_INSTRUCTIONS_FILE = str(path)

    post_meta(client, meta_text("Hello", "wamid.a7"))

    [request] = fake_openai.requests
    assert request["instructions"].startswith("FILE INSTRUCTIONS.")
    assert names(request) == ["request_human", "save_customer_details"]
    assert Message.objects.get(author=Message.Author.BOT).agent_name == ""


def test_in_the_conversations_api_mode_the_hand_over_call_gets_its_output(
    client, graph_ok, fake_openai, team, settings
):
    settings.OPENAI_USE_CONVERSATIONS = True
    fake_openai.call_tool("transfer_to_billing", {}, call_id="call_t")
    fake_openai.answer("Billing here.")

    post_meta(client, meta_text("Refund?", "wamid.a8"))

    first, second = fake_openai.requests
    assert first["conversation"] == second["conversation"] == "conv_1"
    # OpenAI holds triage's call: billing's request answers it before the customer's turn.
    answered = {"type": "function_call_output", "call_id": "call_t", "output": "Transferred to billing."}
    assert second["input"][0] == answered
    assert second["input"][1:] == first["input"]
    assert second["instructions"].startswith("BILLING RULES.")


def test_an_inactive_tool_is_not_offered(client, graph_ok, fake_openai, team):
    Tool.objects.filter(name="refund_status").update(is_active=False)
    fake_openai.call_tool("transfer_to_billing", {}, call_id="call_t")

    post_meta(client, meta_text("Refund?", "wamid.a9"))

    assert "refund_status" not in names(fake_openai.requests[1])
    assert names(fake_openai.requests[1])[-1] == "transfer_to_triage"
