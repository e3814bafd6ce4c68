"""Provider-independent shapes: what every provider module parses into and raises.

Nothing outside `conversations/providers/` knows what a Meta or Twilio payload looks like.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError


@dataclass(frozen=True)
class MediaRef:
    """Where a message's file can be fetched from. Stored, never shown to the model."""

    provider_ref: str  # Meta media id, or Twilio MediaUrlN
    mime_type: str = ""
    sha256: str = ""
    filename: str = ""
    caption: str = ""
    is_voice: bool = False


@dataclass(frozen=True)
class InboundMessage:
    provider: str
    provider_message_id: str
    channel: str
    business_address: str  # where the customer wrote to; replies go out from it
    external_user_id: str  # the provider's stable id of the customer
    kind: str
    text: str = ""
    phone_number: str = ""  # E.164, when the provider gave one
    display_name: str = ""
    timestamp: datetime | None = None
    media: tuple[MediaRef, ...] = ()
    reacts_to: str = ""  # provider id of the message a reaction is about

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, the form a webhook stores until a worker records the message."""
        # Not asdict(self): it deep-copies every field, and this runs on every webhook.
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["timestamp"] = self.timestamp.isoformat() if self.timestamp else None
        data["media"] = [asdict(ref) for ref in self.media]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InboundMessage:
        """The message from `to_json`'s dict; keys this version does not know are ignored, so
        deliveries stored before a deploy are still recorded after it."""
        known = {f.name for f in fields(cls)}
        timestamp = data.get("timestamp")
        return cls(
            **{
                **{name: value for name, value in data.items() if name in known},
                "timestamp": datetime.fromisoformat(timestamp) if timestamp else None,
                "media": tuple(MediaRef(**ref) for ref in data.get("media", ())),
            }
        )


@dataclass(frozen=True)
class StatusUpdate:
    provider: str
    provider_message_id: str
    status: str  # a conversations.Message.Status value
    timestamp: datetime | None = None
    error_code: str = ""
    error_title: str = ""
    client_ref: str = ""  # our Message.uid, echoed back by the provider


@dataclass(frozen=True)
class ParsedWebhook:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


class InvalidPayload(ValueError):
    """The webhook body is not what the provider sends (bad JSON, wrong shape)."""


class ProviderError(Exception):
    def __init__(self, code: str = "", title: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"{code} {title}".strip())
        self.code = code
        self.title = title
        self.retry_after = retry_after


class TransientProviderError(ProviderError):
    """The provider did not take the message and says (or we know) trying later may work."""


class PermanentProviderError(ProviderError):
    """The provider refused the message for good (bad number, window closed, bad token)."""


class DeliveryUnknown(ProviderError):
    """The request may have reached the provider: resending could deliver it twice."""


def classify_requests_exception(exc: requests.RequestException) -> ProviderError:
    """Map a transport failure to whether the provider could have received the request.

    A refused or timed-out *connection* means nothing was sent: safe to retry. Anything after
    the connection was made (read timeout, reset) may have been accepted.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return TransientProviderError("connect_timeout", "Could not connect in time")
    if isinstance(exc, requests.ConnectionError) and _is_refused_connection(exc):
        return TransientProviderError("connection_refused", "Could not connect")
    return DeliveryUnknown(type(exc).__name__, "No answer after the request was sent")


def _is_refused_connection(exc: requests.ConnectionError) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)
