"""A tool's configuration is checked when staff save it, the model's arguments on every call."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from agents.models import Tool
from agents.tools import ToolError, check_tool, prepare_call, shape_result

SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}


def tool(**fields) -> Tool:
    values = {
        "name": "lookup_order",
        "description": "Look an order up.",
        "parameters": SCHEMA,
        "url_template": "https://shop.example/orders/{order_id}",
        "allowed_hosts": ["shop.example"],
        **fields,
    }
    return Tool(**values)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"parameters": {"type": "object", "properties": {"a": {"type": "strnig"}}}}, "parameters"),
        ({"parameters": {"type": "array"}}, "parameters"),
        ({"parameters": ["not", "a", "schema"]}, "parameters"),
        ({"url_template": "https://evil.example/{order_id}"}, "url_template"),
        ({"url_template": "file:///etc/passwd"}, "url_template"),
        ({"allowed_hosts": "shop.example"}, "allowed_hosts"),
        ({"secret_headers": {"Authorization": "SECRET_KEY"}}, "secret_headers"),
        ({"secret_headers": {"Authorization": "OPENAI_API_KEY"}}, "secret_headers"),
        ({"headers": {"Bad Header": "x"}}, "headers"),
        ({"headers": {"X-Count": 3}}, "headers"),
        ({"result_fields": "status"}, "result_fields"),
    ],
)
def test_a_tool_that_cannot_work_is_refused_on_save(fields, field):
    with pytest.raises(ValidationError) as error:
        check_tool(tool(**fields))

    assert field in error.value.message_dict


def test_a_sound_tool_passes():
    check_tool(tool(secret_headers={"Authorization": "TOOL_SECRET_SHOP"}, result_fields=["status"]))


@pytest.mark.django_db
def test_the_admin_refuses_a_tool_whose_schema_is_not_json_schema(admin_client):
    response = admin_client.post(
        "/admin/agents/tool/add/",
        {
            "name": "lookup_order",
            "description": "Look an order up.",
            "parameters": '{"type": "object", "properties": {"a": {"type": 5}}}',
            "method": "GET",
            "url_template": "https://shop.example/orders/{order_id}",
            "headers": "{}",
            "secret_headers": "{}",
            "timeout_seconds": "5",
            "allowed_hosts": '["shop.example"]',
            "result_fields": "[]",
            "max_result_chars": "1000",
            "is_active": "on",
        },
    )

    assert response.status_code == 200
    assert "Not a valid JSON Schema" in response.content.decode()
    assert not Tool.objects.exists()


@pytest.mark.parametrize("order_id", ["../../admin", "1?x=1#frag", "a/b", "%2e%2e", "ü 1"])
def test_arguments_cannot_change_the_path_or_the_host(order_id):
    call = prepare_call(tool(), {"order_id": order_id})

    assert call.url.startswith("https://shop.example/orders/")
    assert "/" not in call.url.removeprefix("https://shop.example/orders/")
    assert "?" not in call.url and "#" not in call.url


def test_arguments_outside_the_template_go_in_the_query_or_the_body():
    schema = {"type": "object", "properties": {"order_id": {"type": "string"}, "reason": {"type": "string"}}}

    get = prepare_call(tool(parameters=schema), {"order_id": "1", "reason": "late"})
    post = prepare_call(tool(parameters=schema, method=Tool.Method.POST), {"order_id": "1", "reason": "late"})

    assert (get.url, get.params, get.json) == ("https://shop.example/orders/1", {"reason": "late"}, None)
    assert (post.params, post.json) == ({}, {"reason": "late"})


def test_arguments_that_do_not_fit_the_schema_are_refused():
    with pytest.raises(ToolError, match=r"Invalid arguments: 'order_id' is a required property"):
        prepare_call(tool(), {})


def test_an_unset_secret_is_a_configuration_error(monkeypatch):
    monkeypatch.delenv("TOOL_SECRET_SHOP", raising=False)

    with pytest.raises(ToolError) as error:
        prepare_call(tool(secret_headers={"Authorization": "TOOL_SECRET_SHOP"}), {"order_id": "1"})

    assert error.value.is_configuration


def test_the_result_keeps_the_chosen_fields_and_is_cut_at_its_cap():
    answer = {"status": "shipped", "items": [{"name": "Green tea"}], "note": "x" * 5000}

    text, cut = shape_result(tool(result_fields=["status", "items.0.name", "missing.path"]), answer)
    long_text, long_cut = shape_result(tool(max_result_chars=100), answer)

    assert (text, cut) == ('{"status":"shipped","items.0.name":"Green tea","missing.path":null}', False)
    assert len(long_text) == 100 and long_text.endswith("…") and long_cut
