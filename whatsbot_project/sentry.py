"""Error tracking through Sentry's SDK (SENTRY_DSN), with personal data kept home.

Sentry's Django, Celery and logging integrations report errors from web, worker and beat.
Before an event leaves, `scrub_event` takes out what may hold a customer's words (request
bodies, cookies, local variables) and masks every phone number and email address left in
any string (exception values, log messages, breadcrumbs), with the logs' own masking.
"""

from __future__ import annotations

from typing import Any

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from whatsbot_project.logging import mask_personal_data

# Request parts that carry what customers and staff wrote, or their sessions.
_DROPPED_REQUEST_KEYS = ("data", "cookies", "env")
_REDACTED_HEADERS = {"authorization", "cookie", "x-hub-signature-256", "x-twilio-signature"}


def init_sentry(*, dsn: str, environment: str, traces_sample_rate: float) -> None:
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
        include_local_variables=False,  # a frame's locals hold message texts and numbers
        max_request_body_size="never",
        integrations=[DjangoIntegration(), CeleryIntegration(), LoggingIntegration()],
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
    )


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """The event without bodies, cookies and secrets' headers, every string masked."""
    request = event.get("request")
    if isinstance(request, dict):
        for key in _DROPPED_REQUEST_KEYS:
            request.pop(key, None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: "[Filtered]" if name.lower() in _REDACTED_HEADERS else value for name, value in headers.items()
            }
    return _masked(event)


def scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    return _masked(crumb)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_personal_data(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    return value
