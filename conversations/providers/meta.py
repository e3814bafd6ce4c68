"""WhatsApp Cloud API (Meta): handshake, signature, webhook parsing, and its Transport.

Docs: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
and https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings

from conversations import safe_http
from conversations.errors import RemoteDeletionError, parse_retry_after
from conversations.models import Channel, Message, Provider

from .base import (
    DeliveryUnknown,
    InboundMessage,
    InvalidPayload,
    MediaRef,
    ParsedWebhook,
    PermanentProviderError,
    SendResult,
    StatusUpdate,
    TransientProviderError,
    Transport,
    Unsupported,
    classify_requests_exception,
)

logger = logging.getLogger(__name__)

_KINDS = {kind.value for kind in Message.Kind}
# A template quick-reply tap (`button`) is a choice like an interactive reply.
_KIND_ALIASES = {"button": Message.Kind.INTERACTIVE}
_STATUSES = {
    "sent": Message.Status.SENT,
    "delivered": Message.Status.DELIVERED,
    "read": Message.Status.READ,
    "played": Message.Status.PLAYED,
    "failed": Message.Status.FAILED,
}
# Graph error codes worth another try later: throughput, pair rate, app/WABA rate limits and
# Meta's own temporary errors. Everything else (131047 window closed, 131026 undeliverable,
# 190 expired token, permissions…) is final.
_TRANSIENT_CODES = {1, 2, 4, 80007, 130429, 131000, 131056}

# One pooled session per process: webhook-driven sends reuse TLS connections to Graph.
_session = requests.Session()


def verify_handshake(params: dict[str, str]) -> str | None:
    """The challenge to echo when Meta's subscription request carries our verify token."""
    token = settings.WHATSAPP_VERIFY_TOKEN
    if (
        token
        and params.get("hub.mode") == "subscribe"
        and hmac.compare_digest(params.get("hub.verify_token", ""), token)
    ):
        return params.get("hub.challenge", "")
    return None


def sign_body(raw_body: bytes) -> str:
    """The X-Hub-Signature-256 value Meta sends with these bytes (used by the simulator and replays)."""
    return "sha256=" + hmac.new(settings.WHATSAPP_APP_SECRET.encode(), raw_body, hashlib.sha256).hexdigest()


def verify_signature(raw_body: bytes, header: str | None) -> bool:
    """Check X-Hub-Signature-256 over the raw bytes (Meta signs the escaped-unicode body)."""
    if not settings.WHATSAPP_APP_SECRET or not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign_body(raw_body), header.strip())


def with_fresh_message_ids(raw_body: bytes) -> bytes:
    """The same delivery with new message ids, so a replay is not taken for a retry."""
    payload = json.loads(raw_body)
    for entry in payload.get("entry", []):
        for change in entry.get("changes", []):
            for message in (change.get("value") or {}).get("messages", []):
                message["id"] = f"{message.get('id', 'wamid.')}.replay.{uuid.uuid4().hex[:12]}"
    return json.dumps(payload).encode()


def parse_webhook(raw_body: bytes) -> ParsedWebhook:
    """Every message and status of every change of every entry in one delivery."""
    try:
        payload = json.loads(raw_body)
        entries = payload["entry"]
        changes = [change for entry in entries for change in entry.get("changes", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidPayload("not a WhatsApp Business Account webhook") from exc

    parsed = ParsedWebhook()
    try:
        for change in changes:
            value = change.get("value") or {}
            if change.get("field") != "messages":
                continue
            for error in value.get("errors", []):
                logger.warning("Meta reported an error: code=%s title=%s", error.get("code"), error.get("title"))
            business = (value.get("metadata") or {}).get("phone_number_id", "")
            contacts = value.get("contacts") or []
            parsed.messages.extend(_parse_message(m, business, contacts) for m in value.get("messages", []))
            parsed.statuses.extend(s for s in map(_parse_status, value.get("statuses", [])) if s)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InvalidPayload("malformed message or status object") from exc
    return parsed


def _parse_message(message: dict[str, Any], business: str, contacts: list[dict[str, Any]]) -> InboundMessage:
    sender_phone = message.get("from", "")
    sender_user_id = message.get("from_user_id", "")
    contact = next(
        (
            c
            for c in contacts
            if (sender_user_id and c.get("user_id") == sender_user_id)
            or (sender_phone and c.get("wa_id") == sender_phone)
        ),
        contacts[0] if len(contacts) == 1 else {},
    )
    wa_id = sender_phone or contact.get("wa_id", "")
    external_id = sender_user_id or contact.get("user_id") or wa_id
    if not external_id:
        raise ValueError("message without a sender")
    msg_type = message["type"]
    return InboundMessage(
        provider=Provider.META,
        provider_message_id=message["id"],
        channel=Channel.META_WHATSAPP,
        business_address=business,
        external_user_id=external_id,
        kind=_KIND_ALIASES.get(msg_type) or (msg_type if msg_type in _KINDS else Message.Kind.UNSUPPORTED),
        text=_text_of(message),
        phone_number=f"+{wa_id.lstrip('+')}" if wa_id else "",
        display_name=(contact.get("profile") or {}).get("name", ""),
        timestamp=_timestamp(message.get("timestamp")),
        media=_media_of(message),
        reacts_to=(message.get("reaction") or {}).get("message_id", "") if msg_type == "reaction" else "",
    )


_MEDIA_TYPES = {"image", "audio", "video", "document", "sticker"}


def _media_of(message: dict[str, Any]) -> tuple[MediaRef, ...]:
    body = message.get(message.get("type", "")) if message.get("type") in _MEDIA_TYPES else None
    if not isinstance(body, dict) or not body.get("id"):
        return ()
    return (
        MediaRef(
            provider_ref=str(body["id"]),
            mime_type=body.get("mime_type", ""),
            sha256=body.get("sha256", ""),
            filename=body.get("filename", ""),
            caption=body.get("caption", ""),
            is_voice=bool(body.get("voice")),
        ),
    )


def _text_of(message: dict[str, Any]) -> str:
    """What the customer said or chose, in words the model can read."""
    msg_type = message.get("type", "")
    value = message.get(msg_type)
    body: dict[str, Any] = value if isinstance(value, dict) else {}
    if msg_type == "text":
        return body.get("body", "")
    if msg_type == "interactive":
        reply = body.get(body.get("type", ""), {})
        return reply.get("title") or reply.get("body", "")
    if msg_type == "button":
        return body.get("text") or body.get("payload", "")
    if msg_type == "location":
        place = ", ".join(part for part in (body.get("name"), body.get("address")) if part)
        coordinates = f"{body.get('latitude')}, {body.get('longitude')}"
        return f"Shared location: {place} ({coordinates})" if place else f"Shared location: {coordinates}"
    if msg_type == "reaction":
        return body.get("emoji", "")
    return body.get("caption", "")


def _parse_status(status: dict[str, Any]) -> StatusUpdate | None:
    mapped = _STATUSES.get(status["status"])
    if mapped is None:
        return None
    error = (status.get("errors") or [{}])[0]
    return StatusUpdate(
        provider=Provider.META,
        provider_message_id=status["id"],
        status=mapped,
        timestamp=_timestamp(status.get("timestamp")),
        error_code=str(error.get("code", "")),
        error_title=error.get("title", "") or error.get("message", ""),
        client_ref=status.get("biz_opaque_callback_data", ""),
    )


def _timestamp(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _graph_url(*path: str) -> str:
    return "/".join([settings.WHATSAPP_GRAPH_URL.rstrip("/"), settings.WHATSAPP_API_VERSION, *path])


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.WHATSAPP_ACCESS_TOKEN}"}


# The message types Graph sends by link (a sticker must be uploaded first).
_SENDABLE_MEDIA = {"image", "audio", "video", "document"}


class MetaTransport(Transport):
    """WhatsApp through the Cloud API: text, templates, media by link, read receipts with typing."""

    provider = Provider.META
    label = "WhatsApp (Meta)"
    has_templates = True
    has_window = True
    has_read_receipts = True
    has_media = True

    def send_text(self, body: str, *, client_ref: str) -> SendResult:
        return self._post_message({"type": "text", "text": {"preview_url": False, "body": body}}, client_ref)

    def send_template(self, *, name: str, language: str, parameters: list[str], client_ref: str) -> SendResult:
        """An approved template: the only thing Meta delivers once the 24-hour window closed."""
        template: dict[str, Any] = {"name": name, "language": {"code": language}}
        if parameters:
            template["components"] = [
                {"type": "body", "parameters": [{"type": "text", "text": value} for value in parameters]}
            ]
        return self._post_message({"type": "template", "template": template}, client_ref)

    def send_media(self, *, url: str, kind: str, caption: str = "", filename: str = "", client_ref: str) -> SendResult:
        """A file Graph fetches from `url` itself: nothing is uploaded to (and left behind at) Meta."""
        if kind not in _SENDABLE_MEDIA:
            raise Unsupported(f"WhatsApp cannot send {kind!r} media by link")
        media: dict[str, Any] = {"link": url}
        if caption and kind != "audio":  # audio takes no caption
            media["caption"] = caption
        if filename and kind == "document":
            media["filename"] = filename
        return self._post_message({"type": kind, kind: media}, client_ref)

    def mark_read(self, provider_message_id: str) -> None:
        """Mark an inbound message read and show "typing…" (until we reply, at most 25 s).

        Off unless WHATSAPP_TYPING_INDICATOR. Raises a ProviderError subclass on failure;
        callers treat it as a courtesy that may fail.
        """
        if not settings.WHATSAPP_TYPING_INDICATOR:
            return
        payload = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": provider_message_id,
            "typing_indicator": {"type": "text"},
        }
        # Short: the reply must not wait long on a courtesy.
        response = _post(self._messages_url(), payload, read_timeout=min(settings.PROVIDER_TIMEOUT_SECONDS, 5.0))
        if not response.ok:
            raise _error_from(response)

    def download_media(self, ref: str, *, max_bytes: int, allowed_types: frozenset[str] | None) -> safe_http.Download:
        """Look the media id up on Graph, then fetch the short-lived URL it returns with the same token.

        Raises safe_http.MediaFetchError. The URL expires within minutes: call this at once.
        """
        graph_host = frozenset({urlsplit(settings.WHATSAPP_GRAPH_URL).hostname or ""})
        lookup = safe_http.fetch(
            _graph_url(ref),
            params={"phone_number_id": self.business_address or settings.WHATSAPP_PHONE_NUMBER_ID},
            headers=_bearer(),
            credential_hosts=graph_host,
            max_bytes=64 * 1024,
            allowed_types=frozenset({"application/json", "text/javascript"}),
        )
        with lookup.file:
            try:
                info = json.load(lookup.file)
                url = info["url"]
            except (ValueError, KeyError, TypeError) as exc:
                raise safe_http.MediaFetchError("Graph answered without a media URL") from exc
        if int(info.get("file_size") or 0) > max_bytes:
            raise safe_http.MediaTooLarge(f"file_size {info['file_size']} over the cap of {max_bytes}")
        # The token goes to the host Graph named (Meta's CDN needs it), never to a host it redirects to.
        return safe_http.fetch(
            url,
            headers=_bearer(),
            credential_hosts=graph_host | {urlsplit(url).hostname or ""},
            max_bytes=max_bytes,
            allowed_types=allowed_types,
            declared_type=info.get("mime_type", ""),
        )

    @classmethod
    def delete_remote_copy(cls, *, remote_id: str) -> bool:
        """DELETE a media object this app uploaded to Graph; False when Graph no longer has it.

        Docs: https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media
        """
        try:
            response = _session.delete(
                _graph_url(remote_id), headers=_bearer(), timeout=(3.05, settings.PROVIDER_TIMEOUT_SECONDS)
            )
        except requests.RequestException as exc:
            raise RemoteDeletionError(type(exc).__name__, is_transient=True) from exc
        if response.ok:
            return True
        if response.status_code == 404 or _is_missing_object(response):
            return False
        error = _error_from(response)
        raise RemoteDeletionError(str(error), is_transient=isinstance(error, TransientProviderError))

    def _messages_url(self) -> str:
        return _graph_url(self.business_address or settings.WHATSAPP_PHONE_NUMBER_ID, "messages")

    def _post_message(self, message: dict[str, Any], client_ref: str) -> SendResult:
        payload: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", **message}
        if client_ref:  # only the last part of a split reply carries it (its statuses stand for the message)
            payload["biz_opaque_callback_data"] = client_ref
        # Phone wins when both are known; a username-only customer is reached by BSUID.
        if self.phone_number:
            payload["to"] = self.phone_number
        else:
            payload["recipient"] = self.customer_id
        response = _post(self._messages_url(), payload, read_timeout=settings.PROVIDER_TIMEOUT_SECONDS)
        if response.ok:
            try:
                return SendResult(provider_message_id=response.json()["messages"][0]["id"])
            except (ValueError, KeyError, IndexError) as exc:
                raise DeliveryUnknown("bad_response", "Graph accepted the request without a message id") from exc
        raise _error_from(response)


def _post(url: str, payload: dict[str, Any], *, read_timeout: float) -> requests.Response:
    try:
        return _session.post(url, json=payload, headers=_bearer(), timeout=(3.05, read_timeout))
    except requests.RequestException as exc:
        raise classify_requests_exception(exc) from exc


def _error_from(response: requests.Response) -> Exception:
    try:
        error = response.json()["error"]
        code, title = int(error.get("code", 0)), error.get("message", "")
    except (ValueError, KeyError, TypeError):
        code, title = 0, response.reason or ""
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    # Branch on Graph's error code; the HTTP status decides only when there is none.
    status = response.status_code
    if code in _TRANSIENT_CODES or (not code and (status >= 500 or status == 429)):
        return TransientProviderError(str(code or status), title, retry_after)
    return PermanentProviderError(str(code or status), title)


def _is_missing_object(response: requests.Response) -> bool:
    # Graph answers 400 code 100 subcode 33 ("object does not exist") for an id it no longer has.
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return error.get("code") == 100 and error.get("error_subcode") == 33


def signed_replay(*, url: str, body: bytes, fresh_ids: bool) -> tuple[bytes, dict[str, str]]:
    """A captured delivery as Meta would send it to `url` now: signed with our secret (and, with
    `fresh_ids`, new message ids so the dedup gate lets it through again)."""
    if fresh_ids:
        body = with_fresh_message_ids(body)
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": sign_body(body)}
