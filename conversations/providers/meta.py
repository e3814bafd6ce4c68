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
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings

from conversations import safe_http
from conversations.errors import RemoteDeletionError, parse_retry_after
from conversations.models import Channel, Message, Provider

from .base import (
    FROM_OWN_NUMBER,
    MESSAGE_ECHO,
    DeliveryUnknown,
    InboundMessage,
    InvalidPayload,
    MediaRef,
    ParsedWebhook,
    PermanentProviderError,
    ProviderSession,
    SendResult,
    StatusUpdate,
    TransientProviderError,
    Transport,
    Unsupported,
    classify_requests_exception,
)
from .validation import (
    BUSINESS_ADDRESS_CHARS,
    DISPLAY_NAME_CHARS,
    ERROR_CODE_CHARS,
    ERROR_TITLE_CHARS,
    EXTERNAL_ID_CHARS,
    FILENAME_CHARS,
    MEDIA_REF_CHARS,
    MESSAGE_ID_CHARS,
    MIME_TYPE_CHARS,
    SHA256_CHARS,
    TYPE_CHARS,
    Refused,
    e164,
    echoed_ref,
    free_text,
    identifier,
    is_own_number,
    nested,
    unix_time,
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


_session = ProviderSession()


def verify_handshake(params: dict[str, str]) -> str | None:
    """The challenge to echo when Meta's subscription request carries our verify token."""
    token = settings.WHATSAPP_VERIFY_TOKEN
    # Bytes: compare_digest raises TypeError on a non-ASCII str, and the query string is anyone's.
    offered = params.get("hub.verify_token", "").encode("utf-8", "surrogatepass")
    if token and params.get("hub.mode") == "subscribe" and hmac.compare_digest(offered, token.encode()):
        return params.get("hub.challenge", "")
    return None


def sign_body(raw_body: bytes) -> str:
    """The X-Hub-Signature-256 value Meta sends with these bytes (used by the simulator and replays)."""
    return "sha256=" + hmac.new(settings.WHATSAPP_APP_SECRET.encode(), raw_body, hashlib.sha256).hexdigest()


def verify_signature(raw_body: bytes, header: str | None) -> bool:
    """Check X-Hub-Signature-256 over the raw bytes (Meta signs the escaped-unicode body)."""
    if not settings.WHATSAPP_APP_SECRET or not header or not header.startswith("sha256="):
        return False
    # Bytes: a header is latin-1 text, and compare_digest raises TypeError on a non-ASCII str.
    return hmac.compare_digest(sign_body(raw_body).encode(), header.strip().encode("latin-1", "replace"))


def with_fresh_message_ids(raw_body: bytes) -> bytes:
    """The same delivery with new message ids, so a replay is not taken for a retry."""
    payload = json.loads(raw_body)
    for entry in payload.get("entry", []):
        for change in entry.get("changes", []):
            for message in (change.get("value") or {}).get("messages", []):
                message["id"] = f"{message.get('id', 'wamid.')}.replay.{uuid.uuid4().hex[:12]}"
    return json.dumps(payload).encode()


def parse_webhook(raw_body: bytes) -> ParsedWebhook:
    """Every message and status of every change of every entry in one delivery.

    Raises InvalidPayload when the body as a whole is not a WhatsApp Business Account webhook.
    A message or status that cannot be passed on clean and bounded is left out, its reason
    kept in `refused`, so the rest of the delivery is received and Meta need not retry it.
    """
    try:
        payload = json.loads(raw_body)
    except RecursionError as exc:  # thousands of nested brackets: no Meta payload is 10 deep
        raise InvalidPayload("JSON nested too deeply") from exc
    except ValueError as exc:  # also bad UTF-8, and integers over Python's 4300 digits
        raise InvalidPayload("not JSON") from exc
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        raise InvalidPayload("not a WhatsApp Business Account webhook")

    parsed = ParsedWebhook()
    for field_name, value in _changes(payload):
        if field_name == _ECHOES:
            # Coexistence: what the business wrote in the WhatsApp Business app, told back to us.
            # Only counted, so a shape we do not read never refuses the delivery.
            echoes = value.get("message_echoes")
            if isinstance(echoes, list):
                parsed.ignored.extend([MESSAGE_ECHO] * len(echoes))
            continue
        _log_reported_errors(value)
        contacts = [contact for contact in _envelope_list(value, "contacts") if isinstance(contact, dict)]
        # The conversation knows the business by its phone number id; its own messages come
        # from the number people see.
        own_number = _display_number(value)
        for message in _envelope_list(value, "messages"):
            try:
                inbound = _parse_message(message, value, contacts)
            except Refused as exc:
                parsed.refused.append(f"message: {exc}")
            except (KeyError, TypeError, AttributeError, ValueError):
                parsed.refused.append("message: malformed")
            else:
                if is_own_number(inbound.phone_number, own_number):
                    parsed.ignored.append(FROM_OWN_NUMBER)
                else:
                    parsed.messages.append(inbound)
        for status in _envelope_list(value, "statuses"):
            try:
                update = _parse_status(status)
            except Refused as exc:
                parsed.refused.append(f"status: {exc}")
            except (KeyError, TypeError, AttributeError, ValueError):
                parsed.refused.append("status: malformed")
            else:
                if update is not None:
                    parsed.statuses.append(update)
    return parsed


def _envelope_list(container: dict[str, Any], key: str) -> list[Any]:
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidPayload(f"{key} is not a list")
    return value


# The field of the changes that echo the business's own messages (WhatsApp Business app coexistence).
_ECHOES = "smb_message_echoes"


def _changes(payload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The field and `value` of every `messages` and echoes change: the envelope, whose shape
    is the delivery's. Other fields (account or template updates) are not read."""
    changes = []
    for entry in _envelope_list(payload, "entry"):
        if not isinstance(entry, dict):
            raise InvalidPayload("entry is not an object")
        for change in _envelope_list(entry, "changes"):
            if not isinstance(change, dict):
                raise InvalidPayload("change is not an object")
            field_name = change.get("field")
            if field_name not in ("messages", _ECHOES):
                continue
            value = change.get("value")
            if value is None:
                continue
            if not isinstance(value, dict):
                raise InvalidPayload("change value is not an object")
            changes.append((field_name, value))
    return changes


def _display_number(value: dict[str, Any]) -> str:
    """The business's number as people see it (`metadata.display_phone_number`), "" if absent."""
    metadata = value.get("metadata")
    number = metadata.get("display_phone_number") if isinstance(metadata, dict) else None
    return number if isinstance(number, str) else ""


def _log_reported_errors(value: dict[str, Any]) -> None:
    for error in _envelope_list(value, "errors"):
        if isinstance(error, dict):
            code, title = error.get("code"), error.get("title")
            # Meta's own words, but from the request: bounded so a log line stays a line.
            logger.warning("Meta reported an error: code=%.32r title=%.200r", code, title)


def _parse_message(message: Any, value: dict[str, Any], contacts: list[dict[str, Any]]) -> InboundMessage:
    if not isinstance(message, dict):
        raise Refused("not an object")
    message_id = identifier(message.get("id"), "id", limit=MESSAGE_ID_CHARS)
    msg_type = identifier(message.get("type"), "type", limit=TYPE_CHARS)
    business = identifier(
        nested(value, "metadata").get("phone_number_id"),
        "phone_number_id",
        limit=BUSINESS_ADDRESS_CHARS,
        required=False,
    )
    sender_phone = identifier(message.get("from"), "from", limit=EXTERNAL_ID_CHARS, required=False)
    sender_user_id = identifier(message.get("from_user_id"), "from_user_id", limit=EXTERNAL_ID_CHARS, required=False)
    contact = next(
        (
            c
            for c in contacts
            if (sender_user_id and c.get("user_id") == sender_user_id)
            or (sender_phone and c.get("wa_id") == sender_phone)
        ),
        contacts[0] if len(contacts) == 1 else {},
    )
    wa_id = sender_phone or identifier(contact.get("wa_id"), "wa_id", limit=EXTERNAL_ID_CHARS, required=False)
    external_id = sender_user_id or identifier(
        contact.get("user_id"), "user_id", limit=EXTERNAL_ID_CHARS, required=False
    )
    external_id = identifier(external_id or wa_id, "sender", limit=EXTERNAL_ID_CHARS)
    return InboundMessage(
        provider=Provider.META,
        provider_message_id=message_id,
        channel=Channel.META_WHATSAPP,
        business_address=business,
        external_user_id=external_id,
        kind=_KIND_ALIASES.get(msg_type) or (msg_type if msg_type in _KINDS else Message.Kind.UNSUPPORTED),
        text=_text_of(message, msg_type),
        phone_number=e164(wa_id),
        display_name=free_text(nested(contact, "profile"), "name", limit=DISPLAY_NAME_CHARS),
        timestamp=unix_time(message.get("timestamp")),
        media=_media_of(message, msg_type),
        reacts_to=_reacts_to(message, msg_type),
    )


_MEDIA_TYPES = {"image", "audio", "video", "document", "sticker"}
_TEXT_TYPES = {"text", "interactive", "button", "location", "reaction"}


def _media_of(message: dict[str, Any], msg_type: str) -> tuple[MediaRef, ...]:
    if msg_type not in _MEDIA_TYPES:
        return ()
    body = nested(message, msg_type)
    media_id = body.get("id")
    if isinstance(media_id, int) and not isinstance(media_id, bool):
        media_id = str(media_id)
    if not media_id:
        return ()
    return (
        MediaRef(
            provider_ref=identifier(media_id, "media id", limit=MEDIA_REF_CHARS),
            mime_type=identifier(body.get("mime_type"), "mime_type", limit=MIME_TYPE_CHARS, required=False),
            sha256=identifier(body.get("sha256"), "sha256", limit=SHA256_CHARS, required=False),
            filename=free_text(body, "filename", limit=FILENAME_CHARS),
            caption=free_text(body, "caption"),
            is_voice=bool(body.get("voice")),
        ),
    )


def _reacts_to(message: dict[str, Any], msg_type: str) -> str:
    if msg_type != "reaction":
        return ""
    reaction = nested(message, "reaction")
    return identifier(reaction.get("message_id"), "reaction message_id", limit=MESSAGE_ID_CHARS, required=False)


def _text_of(message: dict[str, Any], msg_type: str) -> str:
    """What the customer said or chose, in words the model can read."""
    body: Mapping[str, Any]
    if msg_type in _TEXT_TYPES or msg_type in _MEDIA_TYPES:
        body = nested(message, msg_type)
    else:  # contacts is a list; a type we do not know may have any shape
        value = message.get(msg_type)
        body = value if isinstance(value, dict) else {}
    if msg_type == "text":
        return free_text(body, "body")
    if msg_type == "interactive":
        reply = nested(body, identifier(body.get("type"), "interactive type", limit=TYPE_CHARS, required=False))
        return free_text(reply, "title") or free_text(reply, "body")
    if msg_type == "button":
        return free_text(body, "text") or free_text(body, "payload")
    if msg_type == "location":
        place = ", ".join(part for part in (free_text(body, "name"), free_text(body, "address")) if part)
        coordinates = f"{_coordinate(body, 'latitude')}, {_coordinate(body, 'longitude')}"
        return f"Shared location: {place} ({coordinates})" if place else f"Shared location: {coordinates}"
    if msg_type == "reaction":
        return free_text(body, "emoji")
    return free_text(body, "caption")


def _coordinate(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value}"[:32]
    return free_text(body, key, limit=32) if value is not None else "None"


def _parse_status(status: Any) -> StatusUpdate | None:
    if not isinstance(status, dict):
        raise Refused("not an object")
    raw_status = status.get("status")
    if not isinstance(raw_status, str):
        raise Refused("status is not a string")
    mapped = _STATUSES.get(raw_status)
    if mapped is None:
        return None
    errors = status.get("errors") or [{}]
    if not isinstance(errors, list) or not isinstance(errors[0], dict):
        raise Refused("errors is not a list of objects")
    error = errors[0]
    code = error.get("code", "")
    if isinstance(code, int) and not isinstance(code, bool):
        code = str(code)  # Graph's codes are integers; a 40-digit one is refused below
    title = free_text(error, "title", limit=ERROR_TITLE_CHARS) or free_text(error, "message", limit=ERROR_TITLE_CHARS)
    return StatusUpdate(
        provider=Provider.META,
        provider_message_id=identifier(status.get("id"), "id", limit=MESSAGE_ID_CHARS),
        status=mapped,
        timestamp=unix_time(status.get("timestamp")),
        error_code=identifier(code, "error code", limit=ERROR_CODE_CHARS, required=False),
        error_title=title,
        client_ref=echoed_ref(status.get("biz_opaque_callback_data")),
    )


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
