"""Twilio Programmable Messaging (WhatsApp and SMS): signature, form parsing, and their Transports.

Docs: https://www.twilio.com/docs/messaging/guides/webhook-request
and https://www.twilio.com/docs/usage/webhooks/webhooks-security
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.rest import Client

from conversations import safe_http
from conversations.errors import RemoteDeletionError
from conversations.models import Channel, Message, Provider

from .base import (
    FROM_OWN_NUMBER,
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
    classify_requests_exception,
)
from .validation import (
    BUSINESS_ADDRESS_CHARS,
    DISPLAY_NAME_CHARS,
    ERROR_CODE_CHARS,
    ERROR_TITLE_CHARS,
    EXTERNAL_ID_CHARS,
    MEDIA_REF_CHARS,
    MESSAGE_ID_CHARS,
    MIME_TYPE_CHARS,
    PHONE_CHARS,
    Refused,
    echoed_ref,
    free_text,
    identifier,
    is_own_number,
)

_WHATSAPP_PREFIX = "whatsapp:"
_STATUSES = {
    # `queued`, `accepted`, `scheduled` and `sending` are steps before `sent`: nothing to record.
    "sent": Message.Status.SENT,
    "delivered": Message.Status.DELIVERED,
    "read": Message.Status.READ,
    "undelivered": Message.Status.FAILED,
    "failed": Message.Status.FAILED,
    "canceled": Message.Status.FAILED,
}
# The statuses of a message Twilio received for us; any other is the status of one we sent.
_INBOUND_STATUSES = frozenset({"receiving", "received"})
_MEDIA_KINDS = {"image": Message.Kind.IMAGE, "audio": Message.Kind.AUDIO, "video": Message.Kind.VIDEO}


def verify_signature(*, url: str, params: Mapping, signature: str | None, settings_header: str | None) -> bool:
    """Check X-Twilio-Signature with the SDK's validator over the URL Twilio requested.

    A request signed with a webhook SharedKey names its algorithm in a settings header; the
    key is then the shared key instead of the auth token.
    """
    algorithm = get_signature_algorithm(settings_header)
    key = settings.TWILIO_WEBHOOK_SHARED_KEY if settings_header else settings.TWILIO_AUTH_TOKEN
    if not key or not signature:
        return False
    return RequestValidator(key).validate(url, params, signature, algorithm=algorithm)


def sign(url: str, params: Mapping[str, str]) -> str:
    """The X-Twilio-Signature Twilio would send for this URL and form (used by replays)."""
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(url, params)


def with_fresh_message_sid(params: Mapping[str, str]) -> dict[str, str]:
    """The same inbound form under a new MessageSid, so a replay is not taken for a retry."""
    sid = ("MM" if int(params.get("NumMedia") or 0) else "SM") + uuid.uuid4().hex
    return {**params, **{name: sid for name in ("MessageSid", "SmsSid", "SmsMessageSid") if name in params}}


def is_status_callback(params: Mapping[str, str]) -> bool:
    """True for the status callback of a message we sent. Twilio posts those to the message's
    StatusCallback URL, but a number or Messaging Service whose status callback URL is set to
    the incoming-message webhook posts them there: From is then our own number, To the customer."""
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    return bool(status) and status not in _INBOUND_STATUSES


def parse_inbound(params: Mapping[str, str]) -> ParsedWebhook:
    """The one message of an inbound request, left out when it is from the number it was sent
    to (the business's own). Twilio sends one message per request, so a message that cannot be
    passed on clean and bounded refuses the request (InvalidPayload)."""
    try:
        inbound = _parse_inbound(params)
    except Refused as exc:
        raise InvalidPayload(str(exc)) from exc
    if is_own_number(inbound.external_user_id, inbound.business_address):
        return ParsedWebhook(ignored=[FROM_OWN_NUMBER])
    return ParsedWebhook(messages=[inbound])


def _parse_inbound(params: Mapping[str, str]) -> InboundMessage:
    sid = identifier(params.get("MessageSid"), "MessageSid", limit=MESSAGE_ID_CHARS)
    sender = identifier(params.get("From"), "From", limit=EXTERNAL_ID_CHARS)
    business = identifier(params.get("To"), "To", limit=BUSINESS_ADDRESS_CHARS)
    if params.get("AccountSid") and settings.TWILIO_ACCOUNT_SID and params["AccountSid"] != settings.TWILIO_ACCOUNT_SID:
        raise Refused("message for another Twilio account")
    is_whatsapp = sender.startswith(_WHATSAPP_PREFIX)
    num_media = _num_media(params)
    return InboundMessage(
        provider=Provider.TWILIO,
        provider_message_id=sid,
        channel=Channel.TWILIO_WHATSAPP if is_whatsapp else Channel.TWILIO_SMS,
        business_address=business,
        external_user_id=sender,
        kind=_kind_of(params, num_media),
        text=_text_of(params),
        phone_number=_phone_of(sender.removeprefix(_WHATSAPP_PREFIX)),
        display_name=free_text(params, "ProfileName", limit=DISPLAY_NAME_CHARS),
        media=_media_of(params, num_media),
    )


def _num_media(params: Mapping[str, str]) -> int:
    # Twilio always sends digits here: anything else is not a Twilio request (400), and
    # guessing "no media" would silently lose a photo.
    value = params.get("NumMedia") or "0"
    if not (value.isascii() and value.isdigit() and len(value) <= 6):
        raise Refused("NumMedia is not a number")
    return min(int(value), 10)  # Twilio carries at most 10 per message


def _phone_of(address: str) -> str:
    # The external id keeps the whole address; a phone that does not fit its column is left out.
    return address if len(address) <= PHONE_CHARS else ""


def _media_of(params: Mapping[str, str], count: int) -> tuple[MediaRef, ...]:
    caption = free_text(params, "Body")
    return tuple(
        MediaRef(
            provider_ref=identifier(params[f"MediaUrl{n}"], f"MediaUrl{n}", limit=MEDIA_REF_CHARS),
            mime_type=identifier(
                params.get(f"MediaContentType{n}"), f"MediaContentType{n}", limit=MIME_TYPE_CHARS, required=False
            ),
            caption=caption if n == 0 else "",
            is_voice=params.get("MessageType") == "audio",
        )
        for n in range(count)
        if params.get(f"MediaUrl{n}")
    )


def _kind_of(params: Mapping[str, str], num_media: int) -> str:
    # MessageType is not documented by Twilio: decide from the fields that are.
    if params.get("Latitude") and params.get("Longitude"):
        return Message.Kind.LOCATION
    if params.get("ButtonPayload") or params.get("ButtonText"):
        return Message.Kind.INTERACTIVE
    if num_media > 0:
        family = params.get("MediaContentType0", "").split("/")[0]
        return _MEDIA_KINDS.get(family, Message.Kind.DOCUMENT)
    return Message.Kind.TEXT


def _text_of(params: Mapping[str, str]) -> str:
    if params.get("Latitude") and params.get("Longitude"):
        place = ", ".join(p for p in (free_text(params, "Label"), free_text(params, "Address")) if p)
        coordinates = f"{free_text(params, 'Latitude', limit=32)}, {free_text(params, 'Longitude', limit=32)}"
        return f"Shared location: {place} ({coordinates})" if place else f"Shared location: {coordinates}"
    return free_text(params, "ButtonText") or free_text(params, "Body")


def parse_status(params: Mapping[str, str], *, client_ref: str = "") -> StatusUpdate | None:
    """A status callback, or None for the intermediate states we do not record.

    `client_ref` is the `ref` query parameter we put in the callback URL when sending.
    """
    raw_status = params.get("MessageStatus") or params.get("SmsStatus")
    sid = params.get("MessageSid") or params.get("SmsSid")
    if not sid or not raw_status:
        raise InvalidPayload("status callback without MessageSid or MessageStatus")
    status = _STATUSES.get(raw_status)
    if status is None:
        return None
    try:
        return StatusUpdate(
            provider=Provider.TWILIO,
            provider_message_id=identifier(sid, "MessageSid", limit=MESSAGE_ID_CHARS),
            status=status,
            error_code=identifier(params.get("ErrorCode"), "ErrorCode", limit=ERROR_CODE_CHARS, required=False),
            error_title=free_text(params, "ErrorMessage", limit=ERROR_TITLE_CHARS),
            client_ref=echoed_ref(client_ref),
        )
    except Refused as exc:
        raise InvalidPayload(str(exc)) from exc


def _configured_client() -> Client:
    return _client(
        settings.TWILIO_ACCOUNT_SID,
        settings.TWILIO_AUTH_TOKEN,
        settings.TWILIO_API_URL,
        settings.PROVIDER_TIMEOUT_SECONDS,
    )


@functools.cache
def _client(account_sid: str, auth_token: str, api_url: str, timeout: float) -> Client:
    http_client = TwilioHttpClient(timeout=timeout)
    # The SDK's own session keeps cpu_count + 4 connections and reads the environment each call.
    http_client.session = ProviderSession()
    client = Client(account_sid, auth_token, http_client=http_client)
    # The SDK hard-codes api.twilio.com; TWILIO_API_URL points it at a proxy or a test double.
    client.api.base_url = api_url.rstrip("/")
    return client


# Twilio refuses to delete a message that is still being sent ("in flight"); it succeeds later.
_MESSAGE_IN_FLIGHT = 20009
# A lookup reads this many of the newest messages between a business address and a customer.
_LOOKUP_LIMIT = 50


class TwilioTransport(Transport):
    """What Twilio's Messages API does for both channels: text, media by URL, downloads, deletion.

    Twilio offers no read receipt for an inbound message, so there is none to show.
    """

    provider = Provider.TWILIO
    # A media_url makes an SMS an MMS, which carriers deliver in the US and Canada (elsewhere
    # Twilio sends a link if the account's MMS Converter is on).
    has_media = True
    has_sent_lookup = True

    def send_text(self, body: str, *, client_ref: str) -> SendResult:
        """Create one message through the REST API, from the number the customer wrote to."""
        return self._create_message(client_ref, body=body)

    def send_media(self, *, url: str, kind: str, caption: str = "", filename: str = "", client_ref: str) -> SendResult:
        """Twilio fetches `url` itself and names the file from it (`filename` has no field here)."""
        return self._create_message(client_ref, media_url=[url], **({"body": caption} if caption else {}))

    def download_media(self, ref: str, *, max_bytes: int, allowed_types: frozenset[str] | None) -> safe_http.Download:
        """Fetch a MediaUrlN with basic auth, following Twilio's redirect to its CDN.

        The URL comes from the webhook, so a forged one could name any host: credentials go only
        to our account's media on the configured Twilio API host, and any other URL is refused.
        Raises safe_http.MediaFetchError.
        """
        api = urlsplit(settings.TWILIO_API_URL)
        parts = urlsplit(ref)
        own_media = f"/2010-04-01/Accounts/{settings.TWILIO_ACCOUNT_SID}/"
        if (parts.scheme, parts.hostname, parts.port) != (api.scheme, api.hostname, api.port) or not (
            settings.TWILIO_ACCOUNT_SID
            and parts.path.startswith(own_media)
            and "/Media/" in parts.path
            and ".." not in parts.path
        ):
            raise safe_http.UnsafeURL("media URL is not this account's media on the Twilio API host")
        return safe_http.fetch(
            ref,
            auth=(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN),
            credential_hosts=frozenset({api.hostname or ""}),
            max_bytes=max_bytes,
            allowed_types=allowed_types,
        )

    def find_sent(self, *, body: str, since: datetime) -> list[StatusUpdate]:
        """Outbound messages with this body Twilio created from the business address to the
        customer since `since`, newest first, from the REST Messages list filtered by To and From.

        Not by DateSent: a message Twilio still queues has no DateSent yet, and must be found.
        Docs: https://www.twilio.com/docs/messaging/api/message-resource#read-multiple-message-resources
        """
        try:
            listed = _configured_client().messages.list(
                to=self.customer_id, from_=self.business_address, limit=_LOOKUP_LIMIT
            )
        except requests.RequestException as exc:
            raise TransientProviderError(type(exc).__name__, "The Messages lookup got no answer") from exc
        except TwilioRestException as exc:
            raise TransientProviderError(str(exc.code or exc.status), exc.msg) from exc
        except TwilioException as exc:  # a list page the SDK could not read (its own, plainer error)
            raise TransientProviderError("lookup_failed", str(exc.args[0] if exc.args else exc)) from exc
        recent = [m for m in listed if m.date_created is None or m.date_created >= since]
        if len(listed) == _LOOKUP_LIMIT and len(recent) == len(listed):
            raise TransientProviderError("lookup_incomplete", "More messages since the send than one lookup reads")
        return [
            StatusUpdate(
                provider=Provider.TWILIO,
                provider_message_id=m.sid,
                # Queued or accepted at Twilio is taken, as a successful create would have said.
                status=_STATUSES.get(str(m.status or ""), Message.Status.SENT),
            )
            for m in recent
            if str(m.direction or "").startswith("outbound") and (m.body or "").strip() == body.strip()
        ]

    @classmethod
    def delete_remote_copy(cls, *, remote_id: str) -> bool:
        """Delete a message resource (and with it its media) at Twilio; False when Twilio no longer has it.

        Raises RemoteDeletionError, transient while the message is in flight (20009).
        """
        try:
            _configured_client().messages(remote_id).delete()
        except requests.RequestException as exc:
            raise RemoteDeletionError(type(exc).__name__, is_transient=True) from exc
        except TwilioRestException as exc:
            if exc.status == 404:
                return False
            is_transient = exc.code == _MESSAGE_IN_FLIGHT or exc.status == 429 or exc.status >= 500
            raise RemoteDeletionError(f"{exc.code or exc.status} {exc.msg}", is_transient=is_transient) from exc
        return True

    def _create_message(self, client_ref: str, **fields: Any) -> SendResult:
        # The customer's address (`whatsapp:+…` or `+…`) says which channel Twilio uses.
        kwargs = {"from_": self.business_address, "to": self.customer_id, **fields, **_status_callback(client_ref)}
        try:
            created = _configured_client().messages.create(**kwargs)
        except requests.RequestException as exc:
            raise classify_requests_exception(exc) from exc
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                raise TransientProviderError(str(exc.code or exc.status), exc.msg) from exc
            raise PermanentProviderError(str(exc.code or exc.status), exc.msg) from exc
        return SendResult(provider_message_id=created.sid)


class TwilioWhatsAppTransport(TwilioTransport):
    label = "WhatsApp (Twilio)"
    has_templates = True
    has_window = True

    def send_template(self, *, name: str, language: str, parameters: list[str], client_ref: str) -> SendResult:
        """Send an approved Content template: since 2025-04 the only way to write outside the window.

        `name` is the Content SID (HX…), which includes the language; Twilio numbers the
        template's variables from 1.
        """
        variables = {str(number): value for number, value in enumerate(parameters, start=1)}
        return self._create_message(
            client_ref, content_sid=name, **({"content_variables": json.dumps(variables)} if variables else {})
        )


class TwilioSmsTransport(TwilioTransport):
    label = "SMS"


def _status_callback(client_ref: str) -> dict[str, str]:
    """Our reference rides in the status-callback URL, so a lost API answer is matched later."""
    if not settings.PUBLIC_BASE_URL:
        return {}
    return {"status_callback": f"{settings.PUBLIC_BASE_URL}/webhooks/twilio/status/?{urlencode({'ref': client_ref})}"}


def signed_replay(*, url: str, body: bytes, fresh_ids: bool) -> tuple[bytes, dict[str, str]]:
    """A captured form as Twilio would post it to `url` now: signed for that URL with our token
    (and, with `fresh_ids`, a new MessageSid so the dedup gate lets it through again)."""
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    if fresh_ids:
        params = with_fresh_message_sid(params)
    return urlencode(params).encode(), {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(url, params),
    }
