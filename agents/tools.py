"""What an HTTP tool call is, without the network: checks of a tool's configuration (on save),
of the model's arguments (on every call), the request they make, and what of the answer goes
back to the model. `conversations/services/tools.py` sends the request through the project's
SSRF-guarded client and records the call.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from uritemplate import URITemplate

from agents.models import Tool

# Staff name the variables; only these may be read, so a tool cannot send SECRET_KEY or
# OPENAI_API_KEY to a host of its choosing.
SECRET_PREFIX = "TOOL_SECRET_"
_ENV_NAME = re.compile(r"^TOOL_SECRET_[A-Z0-9_]+$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_BODY_METHODS = {Tool.Method.POST, Tool.Method.PUT, Tool.Method.PATCH}


class ToolError(Exception):
    """A call that cannot be made: its message is the short result the model reads. Invalid
    arguments are the model's to fix; `is_configuration` errors are staff's."""

    def __init__(self, message: str, *, is_configuration: bool = False) -> None:
        super().__init__(message)
        self.is_configuration = is_configuration


@dataclass(frozen=True)
class PreparedCall:
    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None


def check_tool(tool: Tool) -> None:
    """Raise ValidationError (by field) when a tool's configuration cannot work."""
    import jsonschema  # see prepare_call

    errors: dict[str, str] = {}
    try:
        jsonschema.Draft202012Validator.check_schema(tool.parameters)
        if tool.parameters.get("type") != "object":
            errors["parameters"] = 'The arguments are an object: the schema needs "type": "object".'
    except jsonschema.SchemaError as exc:
        errors["parameters"] = f"Not a valid JSON Schema: {exc.message}"
    except AttributeError:
        errors["parameters"] = "A JSON Schema is an object."
    hosts = tool.allowed_hosts if isinstance(tool.allowed_hosts, list) else None
    if hosts is None or not all(isinstance(host, str) and host for host in hosts):
        errors["allowed_hosts"] = 'A list of host names, e.g. ["shop.example"].'
    url = tool.url_template.replace("{", "").replace("}", "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors["url_template"] = "An http(s) URL with a host."
    elif hosts is not None and parts.hostname not in hosts:
        errors["url_template"] = f"Its host {parts.hostname} is not among the allowed hosts."
    headers = {**_mapping(tool.headers, "headers", errors), **_mapping(tool.secret_headers, "secret_headers", errors)}
    if any(not _HEADER_NAME.match(name) for name in headers):
        errors.setdefault("headers", "Header names are letters, digits and dashes.")
    if isinstance(tool.secret_headers, dict):
        bad = [name for name in tool.secret_headers.values() if not isinstance(name, str) or not _ENV_NAME.match(name)]
        if bad:
            errors["secret_headers"] = f"Environment variable names start with {SECRET_PREFIX} (A-Z, 0-9, _)."
    if not isinstance(tool.result_fields, list) or not all(isinstance(path, str) for path in tool.result_fields):
        errors["result_fields"] = 'A list of dotted paths, e.g. ["status", "shipment.eta"].'
    if errors:
        raise ValidationError(errors)


def _mapping(value: object, name: str, errors: dict[str, str]) -> dict:
    if isinstance(value, dict) and all(isinstance(item, str) for item in value.values()):
        return value
    errors[name] = 'An object of names to text, e.g. {"Accept": "application/json"}.'
    return {}


def prepare_call(tool: Tool, arguments: dict[str, Any]) -> PreparedCall:
    """The request for validated arguments; raises ToolError when they do not fit the schema
    or a secret header's variable is unset."""
    # Loaded on the first call, not with the app: every process (each manage.py command, the
    # suite's) loads this module through the admin, few check or call a tool; jsonschema costs
    # some 0.08 s of CPU to load.
    import jsonschema

    validator = jsonschema.Draft202012Validator(tool.parameters)
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path)
        raise ToolError(f"Invalid arguments{f' ({where})' if where else ''}: {error.message[:200]}")
    template = URITemplate(tool.url_template)
    in_url = set(template.variable_names)
    url = template.expand({name: _text(value) for name, value in arguments.items() if name in in_url})
    rest = {name: value for name, value in arguments.items() if name not in in_url}
    headers = dict(tool.headers)
    for header, variable in tool.secret_headers.items():
        value = os.environ.get(variable)
        if not value:
            raise ToolError(
                "Error: the tool is not configured; tell the customer it is unavailable.", is_configuration=True
            )
        headers[header] = value
    if tool.method in _BODY_METHODS:
        return PreparedCall(tool.method, url, headers, json=rest)
    return PreparedCall(tool.method, url, headers, params=rest)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def shape_result(tool: Tool, answer: Any) -> tuple[str, bool]:
    """What the model reads back of a JSON answer: the configured fields, at most
    max_result_chars characters; and whether it was cut."""
    if tool.result_fields and isinstance(answer, dict):
        answer = {path: _pick(answer, path) for path in tool.result_fields}
    text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False, separators=(",", ":"))
    return truncate(text, tool.max_result_chars)


def truncate(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[: max(limit - 1, 0)] + "…", True


def _pick(data: Any, path: str) -> Any:
    for key in path.split("."):
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return None
    return data
