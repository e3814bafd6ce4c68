"""Capture and replay of raw webhook requests, to reproduce a production incident on a laptop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils import timezone

from conversations import providers
from conversations.models import CapturedWebhook

# Only what a replay needs; cookies, auth and proxy headers are never kept.
_KEPT_HEADERS = ("Content-Type", "User-Agent", "X-Hub-Signature-256", "X-Twilio-Signature")

CaptureRefusal = Callable[..., bool]  # (*, provider: str, body: bytes) -> True: do not keep it
# Registered at start-up by the apps above this one (gdpr: "this names an erased person"),
# which this module cannot import.
_refusals: list[CaptureRefusal] = []


def refuse_captures_when(check: CaptureRefusal) -> None:
    """Never capture a request for which `check(provider=…, body=…)` is true."""
    if check not in _refusals:
        _refusals.append(check)


def capture_webhook_request(*, provider: str, path: str, headers: dict[str, str], body: bytes) -> None:
    """Keep one raw request when capture is on (WEBHOOK_CAPTURE_HOURS > 0)."""
    if settings.WEBHOOK_CAPTURE_HOURS <= 0:
        return
    if any(check(provider=provider, body=body) for check in _refusals):
        return
    kept = {name: headers[name] for name in _KEPT_HEADERS if name in headers}
    CapturedWebhook.objects.create(provider=provider, path=path, headers=kept, body=body)


def purge_expired_captures() -> int:
    """Delete captures older than WEBHOOK_CAPTURE_HOURS (all of them when capture is off)."""
    cutoff = timezone.now() - timedelta(hours=max(settings.WEBHOOK_CAPTURE_HOURS, 0))
    deleted, _ = CapturedWebhook.objects.filter(received_at__lt=cutoff).delete()
    return deleted


def replay_webhook(*, provider: str, path: str, body: bytes, base_url: str, fresh_ids: bool = False) -> int:
    """POST a captured or saved request to `base_url` + its path, signed anew with the configured
    secret; returns the HTTP status. `fresh_ids` gives its messages new ids so the dedup gate
    lets them through again."""
    url = base_url.rstrip("/") + path
    body, headers = providers.signed_replay(provider=provider, url=url, body=body, fresh_ids=fresh_ids)
    if not urlsplit(url).scheme:
        raise ValueError(f"not an absolute URL: {url}")
    response = requests.post(url, data=body, headers=headers, timeout=(3.05, 30))
    return response.status_code
