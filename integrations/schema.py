"""The staff API's OpenAPI 3 schema (drf-spectacular): the token scheme, and each operation's
scope as `x-required-scope` (and in its description), so integrators see what a token needs.
Views without a scope serve staff sessions only and are left out."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


class ScopedAutoSchema(AutoSchema):
    def get_operation(self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any) -> Any:
        scope = getattr(self.view, "required_scope", None)
        if not scope:  # for staff sessions only (the live inbox): not part of the token API
            return None
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is not None:
            operation["x-required-scope"] = scope
            note = f"Token scope: `{scope}`."
            operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
        return operation

    def _get_serializer_name(self, serializer: Any, direction: str, bypass_extensions: bool = False) -> str:
        # Every view's input is its own inner `InputSerializer`: named after the view instead.
        name = super()._get_serializer_name(serializer, direction, bypass_extensions)
        if name == "Input":
            return type(self.view).__name__.removesuffix("Api") + "Input"
        return name


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "integrations.auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token created in the admin (Integrations, API tokens), with the scopes it needs.",
        }


def only_the_staff_api(endpoints: list[tuple[str, str, str, Any]]) -> list[tuple[str, str, str, Any]]:
    """The schema documents /api/ only (webhooks and the simulator are not for integrators)."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/")]
