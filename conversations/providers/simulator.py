"""The built-in WhatsApp simulator: a provider that speaks Meta's wire format to our own webhook.

What a simulated customer writes becomes a Meta-format webhook body, signed with the app secret
and POSTed to the real endpoint (the production code path: signature, dedup, Celery, model).
Replies to a simulated conversation come back through this transport instead of the Graph
API — pushed to the customer's page over the channel layer — and its statuses arrive as signed
status webhooks, like the real API's. Payload shapes follow
https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import requests
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from conversations import safe_http
from conversations.models import Provider

from . import meta
from .base import SendResult, Transport, describe_template

# The phone_number_id of the simulated business number: conversations recorded with it are
# answered through SimulatorTransport even when real Meta or Twilio credentials are configured
# (conversations.providers chooses by this address before the channel).
SIMULATOR_NUMBER_ID = "simulator"
SIMULATOR_DISPLAY_NUMBER = "15550000000"


def customer_group(customer_id: str) -> str:
    return f"simulator.{customer_id}"


def new_message_id() -> str:
    return f"wamid.SIM.{uuid.uuid4().hex}"


def build_message_body(
    *, message_id: str, customer_id: str, phone_number: str, name: str, kind: str, content: dict[str, Any]
) -> bytes:
    """A Meta webhook body carrying one message from a simulated customer.

    `content` is the type object of the message (`{"body": …}` for text, `{"latitude": …}` for
    a location, `{"type": "button_reply", "button_reply": {…}}` for a button tap, …).
    """
    wa_id = phone_number.lstrip("+")
    message = {
        "from": wa_id,
        "from_user_id": customer_id,
        "id": message_id,
        "timestamp": str(int(time.time())),
        "type": kind,
        kind: content,
    }
    contact = {"profile": {"name": name}, "wa_id": wa_id, "user_id": customer_id}
    return _envelope({"contacts": [contact], "messages": [message]})


def message_content(
    *,
    action: str,
    text: str = "",
    latitude: float | None = None,
    longitude: float | None = None,
    place: str = "",
    media_id: str = "",
) -> tuple[str, dict[str, Any]]:
    """The Meta message type and its object for what a simulated customer did
    (`text`, `button`, `location`, `voice`, `photo`; the media ids come from store_upload)."""
    if action in ("voice", "photo"):
        media = {"id": media_id, "mime_type": UPLOAD_TYPES[os.path.splitext(media_id)[1]]}
        if action == "voice":
            return "audio", {**media, "voice": True}
        return "image", {**media, **({"caption": text} if text else {})}
    if action == "location":
        return "location", {"latitude": latitude, "longitude": longitude, **({"name": place} if place else {})}
    if action == "button":
        reply = {"id": text.lower().replace(" ", "_")[:200], "title": text}
        return "interactive", {"type": "button_reply", "button_reply": reply}
    return "text", {"body": text}


def build_status_body(*, provider_message_id: str, status: str, customer_id: str, client_ref: str) -> bytes:
    """A Meta status webhook body for a message this transport delivered."""
    return _envelope(
        {
            "statuses": [
                {
                    "id": provider_message_id,
                    "status": status,
                    "timestamp": str(int(time.time())),
                    "recipient_user_id": customer_id,
                    "biz_opaque_callback_data": client_ref,
                }
            ]
        }
    )


def _envelope(value: dict[str, Any]) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": SIMULATOR_DISPLAY_NUMBER, "phone_number_id": SIMULATOR_NUMBER_ID},
        **value,
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "simulator", "changes": [{"field": "messages", "value": value}]}],
    }
    # Escaped unicode, as Meta sends it.
    return json.dumps(payload).encode()


def post_to_webhook(body: bytes) -> int:
    """POST a body to our own Meta webhook, signed like Meta signs it; returns the HTTP status."""
    response = requests.post(
        webhook_url(),
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": meta.sign_body(body)},
        timeout=(3.05, settings.PROVIDER_TIMEOUT_SECONDS),
    )
    return response.status_code


def webhook_url() -> str:
    if settings.SIMULATOR_WEBHOOK_URL:
        return settings.SIMULATOR_WEBHOOK_URL
    return f"{settings.PUBLIC_BASE_URL or 'http://127.0.0.1:8000'}/webhooks/meta/"


OUTBOUND_ID_PREFIX = "wamid.SIMOUT."


class SimulatorTransport(Transport):
    """Answers a simulated customer on their open pages; the phone sends receipts back as status webhooks.

    It stands in for WhatsApp (window, templates, read receipts, files staff send: the phone
    shows them from the link a provider would fetch).
    """

    provider = Provider.META  # simulated conversations are Meta conversations to the rest of the app
    label = "The simulator"
    has_templates = True
    has_window = True
    has_read_receipts = True
    has_media = True

    def send_text(self, body: str, *, client_ref: str) -> SendResult:
        """Deliver a reply to the simulated customer's open pages."""
        provider_message_id = f"{OUTBOUND_ID_PREFIX}{uuid.uuid4().hex}"
        self._push(
            {
                "type": "simulator.message",
                "message": {"id": provider_message_id, "client_ref": client_ref, "text": body},
            }
        )
        return SendResult(provider_message_id=provider_message_id)

    def send_template(self, *, name: str, language: str, parameters: list[str], client_ref: str) -> SendResult:
        """The simulator has no template store: its customer sees the summary staff see."""
        return self.send_text(
            describe_template(name=name, language=language, parameters=parameters), client_ref=client_ref
        )

    def send_media(self, *, url: str, kind: str, caption: str = "", filename: str = "", client_ref: str) -> SendResult:
        """Show a file staff sent on the simulated customer's pages (the page loads it from this host)."""
        provider_message_id = f"{OUTBOUND_ID_PREFIX}{uuid.uuid4().hex}"
        media = {"url": urlsplit(url).path, "kind": kind, "filename": filename}
        self._push(
            {
                "type": "simulator.message",
                "message": {"id": provider_message_id, "client_ref": client_ref, "text": caption, "media": media},
            }
        )
        return SendResult(provider_message_id=provider_message_id)

    def mark_read(self, provider_message_id: str) -> None:
        """Blue ticks on the simulated customer's message and "typing…", as WhatsApp shows them."""
        self._push({"type": "simulator.receipt", "receipt": {"id": provider_message_id, "status": "read"}})
        self._push({"type": "simulator.typing"})

    def download_media(self, ref: str, *, max_bytes: int, allowed_types: frozenset[str] | None) -> safe_http.Download:
        """The uploaded file, checked like a download from Meta (size, content type), then dropped."""
        return _take_upload(ref, max_bytes=max_bytes, allowed_types=allowed_types)

    def _push(self, event: dict[str, Any]) -> None:
        layer = get_channel_layer()
        if layer is None:  # the settings always configure one (Redis, else in memory)
            raise RuntimeError("CHANNEL_LAYERS is not configured")
        async_to_sync(layer.group_send)(customer_group(self.customer_id), event)


# --- Media: what a simulated customer uploads stands in for Meta's media store.
_UPLOADS = "simulator-uploads"
# What a phone would say each file is (mimetypes differs between systems for audio).
UPLOAD_TYPES = {
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".wav": "audio/wav",
    ".webm": "audio/webm",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}


def store_upload(upload: File) -> str:
    """Keep an uploaded voice note or photo; returns the media id the webhook body will carry."""
    extension = os.path.splitext(upload.name or "")[1].lower()[:8]
    media_id = f"sim-media-{uuid.uuid4().hex}{extension}"
    default_storage.save(f"{_UPLOADS}/{media_id}", upload)
    return media_id


def _take_upload(media_id: str, *, max_bytes: int, allowed_types: frozenset[str] | None) -> safe_http.Download:
    if not re.fullmatch(r"sim-media-[0-9a-f]{32}(\.[a-z0-9]{1,7})?", media_id):
        raise safe_http.UnsafeURL("not a simulator media id")
    name = f"{_UPLOADS}/{media_id}"
    if not default_storage.exists(name):
        raise safe_http.MediaFetchError("simulated media is gone", is_transient=False)
    if default_storage.size(name) > max_bytes:
        raise safe_http.MediaTooLarge(f"over the cap of {max_bytes} bytes")
    content_type = UPLOAD_TYPES.get(os.path.splitext(media_id)[1], "application/octet-stream")
    if allowed_types is not None and content_type not in allowed_types:
        raise safe_http.UnexpectedContentType(f"{content_type} is not allowed here")
    copy = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)
    digest = hashlib.sha256()
    with default_storage.open(name, "rb") as source:
        for chunk in iter(lambda: source.read(64 * 1024), b""):
            copy.write(chunk)
            digest.update(chunk)
    size = copy.tell()
    copy.seek(0)
    default_storage.delete(name)
    return safe_http.Download(file=copy, content_type=content_type, size_bytes=size, sha256=digest.hexdigest())
