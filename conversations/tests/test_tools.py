"""Agents' HTTP tools in the reply loop: the fake OpenAI returns function calls at the HTTP
boundary, the business's API is a local HTTP server on 127.0.0.1 (pytest-httpserver, reached as
`localhost`, listed in TOOL_PRIVATE_HOSTS), and the real safe_http client calls it."""

from __future__ import annotations

import json
import time

import pytest
from werkzeug import Response

from agents.models import Agent, Tool
from agents.tools import check_tool
from conversations.models import Message, ToolCall
from conversations.services.replies import APOLOGY
from conversations.tests.helpers import meta_text, post_meta

pytestmark = pytest.mark.django_db

ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "pattern": "^[0-9]{4}$"},
        "fields": {"type": "string", "enum": ["eta", "all"]},
    },
    "required": ["order_id"],
    "additionalProperties": False,
}


@pytest.fixture
def shop(httpserver, settings, monkeypatch, fake_providers):
    """The business's order API (the same local server as the fake OpenAI, other paths)."""
    fake_providers.add_passthru(httpserver.url_for("/"))  # `responses` fakes only Graph and Twilio
    settings.TOOL_PRIVATE_HOSTS = ["localhost"]
    monkeypatch.setenv("TOOL_SECRET_ORDERS", "Bearer s3cret")
    return httpserver


def make_tool(shop, **fields) -> Tool:
    values = {
        "name": "lookup_order",
        "description": "Look up an order by its number.",
        "parameters": ORDER_SCHEMA,
        "url_template": shop.url_for("/api/orders/") + "{order_id}",
        "headers": {"X-Shop": "demo"},
        "secret_headers": {"Authorization": "TOOL_SECRET_ORDERS"},
        "allowed_hosts": ["localhost"],
        "result_fields": ["status", "shipment.eta"],
        "timeout_seconds": 0.5,
        **fields,
    }
    tool = Tool(**values)
    check_tool(tool)
    tool.save()
    return tool


def make_agent(*tools: Tool, name: str = "support", **fields) -> Agent:
    agent = Agent.objects.create(name=name, instructions=f"You are the {name} agent.", is_entry=True, **fields)
    agent.tools.set(tools)
    return agent


def api_requests(shop, path_prefix: str = "/api/") -> list:
    return [request for request, _ in shop.log if request.path.startswith(path_prefix)]


def outputs(request: dict) -> dict[str, str]:
    return {item["call_id"]: item["output"] for item in request["input"] if item.get("type") == "function_call_output"}


def bot_reply() -> Message:
    return Message.objects.get(author=Message.Author.BOT)


def test_a_tool_call_reaches_the_service_as_configured_and_only_its_selected_fields_go_back(
    client, graph_ok, fake_openai, shop
):
    make_agent(make_tool(shop))
    shop.expect_request("/api/orders/1001").respond_with_json(
        {"status": "shipped", "shipment": {"eta": "tomorrow", "carrier": "DHL"}, "internal_note": "VIP customer"}
    )
    fake_openai.call_tools(("lookup_order", {"order_id": "1001", "fields": "eta"}))
    fake_openai.answer("Your order ships tomorrow.")

    post_meta(client, meta_text("Where is order 1001?", "wamid.t1"))

    [call] = api_requests(shop)
    assert (call.method, call.path, call.args.to_dict()) == ("GET", "/api/orders/1001", {"fields": "eta"})
    assert call.headers["Authorization"] == "Bearer s3cret"
    assert call.headers["X-Shop"] == "demo"
    first, second = fake_openai.requests
    [definition] = [tool for tool in first["tools"] if tool["name"] == "lookup_order"]
    assert definition["parameters"] == ORDER_SCHEMA
    assert definition["strict"] is False
    assert outputs(second) == {"call_1": '{"status":"shipped","shipment.eta":"tomorrow"}'}
    assert "VIP" not in json.dumps(second)
    assert "s3cret" not in json.dumps(fake_openai.requests)
    [record] = ToolCall.objects.all()
    assert (record.tool_name, record.agent_name, record.status, record.http_status) == (
        "lookup_order",
        "support",
        ToolCall.Status.OK,
        200,
    )
    assert record.arguments == {"order_id": "1001", "fields": "eta"}
    assert record.result == '{"status":"shipped","shipment.eta":"tomorrow"}'
    assert record.message.text == "Where is order 1001?"
    assert bot_reply().text == "Your order ships tomorrow."
    assert bot_reply().agent_name == "support"


def test_several_calls_in_one_round_all_run_and_go_back_in_the_same_turn(client, graph_ok, fake_openai, shop):
    make_agent(make_tool(shop))
    shop.expect_request("/api/orders/1001").respond_with_json({"status": "shipped"})
    shop.expect_request("/api/orders/1002").respond_with_json({"status": "processing"})
    fake_openai.call_tools(("lookup_order", {"order_id": "1001"}), ("lookup_order", {"order_id": "1002"}))
    fake_openai.answer("One shipped, one is being prepared.")

    post_meta(client, meta_text("Where are 1001 and 1002?", "wamid.t2"))

    assert sorted(request.path for request in api_requests(shop)) == ["/api/orders/1001", "/api/orders/1002"]
    _, second = fake_openai.requests
    assert outputs(second) == {
        "call_1": '{"status":"shipped","shipment.eta":null}',
        "call_2": '{"status":"processing","shipment.eta":null}',
    }
    assert ToolCall.objects.filter(status=ToolCall.Status.OK).count() == 2
    assert bot_reply().text == "One shipped, one is being prepared."


def slow(request):
    # Answers only after the tool's 0.1 s timeout has passed, and blocks the one-threaded server
    # (the fake OpenAI's too) meanwhile: the model's next call waits for it.
    time.sleep(0.3)
    return Response("{}", content_type="application/json")


def redirect_to(url):
    return lambda request: Response("", status=302, headers={"Location": url})


@pytest.mark.parametrize(
    ("arguments", "respond", "tool_fields", "status", "output_start"),
    [
        ({"order_id": "../../admin"}, None, {}, ToolCall.Status.INVALID, "Invalid arguments (order_id):"),
        ({"order_id": "1001", "extra": "x"}, None, {}, ToolCall.Status.INVALID, "Invalid arguments:"),
        ({"order_id": "1001"}, slow, {"timeout_seconds": 0.1}, ToolCall.Status.TIMEOUT, "Error: the service did not"),
        (
            {"order_id": "1001"},
            lambda request: Response('{"error": "boom"}', status=500, content_type="application/json"),
            {},
            ToolCall.Status.ERROR,
            "Error: the service answered HTTP 500",
        ),
        ({"order_id": "1001"}, "loopback", {}, ToolCall.Status.REFUSED, "Error: the service could not be reached"),
        (
            {"order_id": "1001"},
            redirect_to("http://169.254.169.254/latest/meta-data/"),
            {},
            ToolCall.Status.REFUSED,
            "Error: the service could not be reached",
        ),
        # Listed by staff, the metadata address is still refused: only the operator's
        # TOOL_PRIVATE_HOSTS may be private.
        (
            {"order_id": "1001"},
            redirect_to("http://169.254.169.254/latest/meta-data/"),
            {"allowed_hosts": ["localhost", "169.254.169.254"]},
            ToolCall.Status.REFUSED,
            "Error: the service could not be reached",
        ),
    ],
    ids=[
        "bad-pattern",
        "unknown-argument",
        "timeout",
        "http-500",
        "redirect-127",
        "redirect-metadata",
        "metadata-listed",
    ],
)
def test_a_failing_call_becomes_a_short_tool_result_and_the_customer_still_gets_a_reply(
    client, graph_ok, fake_openai, shop, arguments, respond, tool_fields, status, output_start
):
    make_agent(make_tool(shop, **tool_fields))
    internal = shop.url_for("/api/internal").replace("localhost", "127.0.0.1")
    shop.expect_request("/api/internal").respond_with_json({"secret": "TOPSECRET-INTERNAL"})
    if respond == "loopback":
        respond = redirect_to(internal)
    if respond is not None:
        shop.expect_request("/api/orders/1001").respond_with_handler(respond)
    fake_openai.call_tools(("lookup_order", arguments))
    fake_openai.answer("Sorry, I can't check your order right now.")

    post_meta(client, meta_text("Where is my order?", "wamid.t3"))

    _, second = fake_openai.requests
    assert outputs(second)["call_1"].startswith(output_start)
    assert len(outputs(second)["call_1"]) < 300
    assert "TOPSECRET" not in json.dumps(second)
    assert api_requests(shop, "/api/internal") == []
    assert [call.status for call in ToolCall.objects.all()] == [status]
    assert bot_reply().text == "Sorry, I can't check your order right now."
    assert bot_reply().status == Message.Status.SENT


def test_an_unset_secret_is_a_tool_error_and_nothing_is_sent_without_it(
    client, graph_ok, fake_openai, shop, monkeypatch
):
    monkeypatch.delenv("TOOL_SECRET_ORDERS")
    make_agent(make_tool(shop))
    fake_openai.call_tools(("lookup_order", {"order_id": "1001"}))
    fake_openai.answer("The order service is unavailable.")

    post_meta(client, meta_text("Where is 1001?", "wamid.t4"))

    assert api_requests(shop) == []
    assert ToolCall.objects.get().status == ToolCall.Status.ERROR
    assert bot_reply().text == "The order service is unavailable."


def test_the_tool_round_cap_holds(client, graph_ok, fake_openai, shop, settings):
    settings.OPENAI_MAX_TOOL_ROUNDS = 2
    make_agent(make_tool(shop))
    shop.expect_request("/api/orders/1001").respond_with_json({"status": "shipped"})
    for _ in range(2):
        fake_openai.call_tools(("lookup_order", {"order_id": "1001"}))
    # Told to answer (tool_choice none), it still calls: the call is not run, its text is the answer.
    fake_openai.call_tools(("lookup_order", {"order_id": "1001"}), text="It has shipped.")

    post_meta(client, meta_text("Where is 1001?", "wamid.t5"))

    assert len(fake_openai.requests) == 3
    assert "tool_choice" not in fake_openai.requests[1]
    assert fake_openai.requests[2]["tool_choice"] == "none"
    assert len(api_requests(shop)) == 2
    assert ToolCall.objects.count() == 2
    assert bot_reply().text == "It has shipped."


def test_a_model_that_only_ever_calls_tools_still_leaves_the_customer_an_answer(
    client, graph_ok, fake_openai, shop, settings
):
    settings.OPENAI_MAX_TOOL_ROUNDS = 1
    settings.OPENAI_MAX_ATTEMPTS = 1
    make_agent(make_tool(shop))
    shop.expect_request("/api/orders/1001").respond_with_json({"status": "shipped"})
    for _ in range(2):
        fake_openai.call_tools(("lookup_order", {"order_id": "1001"}))

    post_meta(client, meta_text("Where is 1001?", "wamid.t6"))

    assert len(fake_openai.requests) == 2
    assert bot_reply().text == APOLOGY


def test_a_tool_that_changes_something_runs_only_after_the_customer_confirmed_that_call(
    client, graph_ok, fake_openai, shop
):
    cancel = make_tool(
        shop,
        name="cancel_order",
        method=Tool.Method.POST,
        url_template=shop.url_for("/api/orders/") + "{order_id}/cancel",
        result_fields=["cancelled"],
        changes_something=True,
    )
    make_agent(cancel)
    shop.expect_request("/api/orders/1002/cancel", method="POST").respond_with_json({"cancelled": True})

    # Asked twice in the same turn: no customer answer in between, so neither runs.
    fake_openai.call_tools(("cancel_order", {"order_id": "1002"}), ("cancel_order", {"order_id": "1002"}))
    fake_openai.answer("Shall I cancel order 1002?")
    post_meta(client, meta_text("Cancel order 1002", "wamid.c1"))
    assert api_requests(shop) == []
    assert all(text.startswith("Not done yet") for text in outputs(fake_openai.requests[1]).values())

    # The customer says yes: another order is still not confirmed, the one asked about is.
    fake_openai.call_tools(("cancel_order", {"order_id": "1003"}))
    fake_openai.call_tools(("cancel_order", {"order_id": "1002"}))
    fake_openai.answer("Order 1002 is cancelled.")
    post_meta(client, meta_text("Yes please", "wamid.c2"))
    [call] = api_requests(shop)
    assert (call.method, call.path, call.get_json()) == ("POST", "/api/orders/1002/cancel", {})
    assert outputs(fake_openai.requests[4]) == {"call_1": '{"cancelled":true}'}

    # The confirmation is used up: a later call needs a new question and answer.
    fake_openai.call_tools(("cancel_order", {"order_id": "1002"}))
    fake_openai.answer("Shall I cancel it again?")
    post_meta(client, meta_text("cancel 1002 again", "wamid.c3"))
    assert len(api_requests(shop)) == 1
    statuses = list(ToolCall.objects.order_by("id").values_list("status", flat=True))
    assert statuses == ["confirmed", "confirmed", "needs_confirmation", "ok", "needs_confirmation"]


def test_a_question_the_customer_never_saw_is_no_confirmation(client, graph_ok, fake_openai, shop):
    make_agent(make_tool(shop, name="cancel_order", method=Tool.Method.POST, changes_something=True))
    shop.expect_request("/api/orders/1002", method="POST").respond_with_json({"cancelled": True})
    # The bot asked, but the model's reply failed: the customer got the apology, not the question.
    fake_openai.call_tools(("cancel_order", {"order_id": "1002"}))
    fake_openai.fail(400, "invalid_request_error")
    post_meta(client, meta_text("Cancel order 1002", "wamid.q1"))
    fake_openai.call_tools(("cancel_order", {"order_id": "1002"}))
    fake_openai.answer("Shall I cancel order 1002?")
    post_meta(client, meta_text("hello?", "wamid.q2"))

    assert api_requests(shop) == []


def test_the_inbox_api_shows_the_calls_and_the_agent_under_the_reply(client, graph_ok, fake_openai, shop, staff_user):
    make_agent(make_tool(shop))
    shop.expect_request("/api/orders/1001").respond_with_json({"status": "shipped"})
    fake_openai.call_tools(("lookup_order", {"order_id": "1001"}))
    fake_openai.answer("Shipped.")
    post_meta(client, meta_text("Where is 1001?", "wamid.t7"))
    client.force_login(staff_user)

    reply = bot_reply()
    messages = client.get(f"/api/conversations/{reply.conversation_id}/messages/").json()

    customer, bot = messages
    assert customer["tool_calls"] == []
    assert bot["agent"] == "support"
    [call] = bot["tool_calls"]
    assert (call["tool_name"], call["status"], call["arguments"]) == ("lookup_order", "ok", {"order_id": "1001"})
    assert call["result"] == '{"status":"shipped","shipment.eta":null}'
