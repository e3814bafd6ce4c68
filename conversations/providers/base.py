"""Provider-independent shapes: what every provider module parses into and raises, and the
`Transport` every channel implements.

Nothing outside `conversations/providers/` knows what a Meta or Twilio payload looks like.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

if TYPE_CHECKING:
    from conversations import safe_http


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
    # Why each message or status left out was refused (field names, never values): one bad
    # element is refused on its own, so the provider does not retry the whole delivery forever.
    refused: list[str] = field(default_factory=list)
    # The messages the business sent itself, received and left out on purpose (one of the
    # reasons below each): never a customer's, so never recorded or answered.
    ignored: list[str] = field(default_factory=list)


FROM_OWN_NUMBER = "message(s) from the business's own number"
MESSAGE_ECHO = "message echo(es) of what the business wrote in the WhatsApp Business app"


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


class InvalidPayload(ValueError):
    """The webhook body as a whole is not what the provider sends (bad JSON, wrong envelope)."""


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


class Unsupported(PermanentProviderError):
    """The channel cannot do this at all (SMS has no templates, web chat no files): never retried."""

    def __init__(self, title: str) -> None:
        super().__init__("unsupported", title)


class ProviderSession(requests.Session):
    """A provider's HTTP session, one per process, shared by its calls: it keeps up to
    WORKER_CONCURRENCY connections per host, and reads the environment's proxy and CA bundle
    settings once per address, not on every call as requests does (with netrc: ~0.25 ms of a
    worker's CPU per call, a fifth of what a send costs it)."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # the environment is read once per address, below; netrc never
        for prefix in ("https://", "http://"):
            # As many as the worker runs calls at once. requests keeps 10 (Twilio's SDK, for
            # HTTPS, cpu_count + 4): beyond that, each connection a busy moment opened is closed
            # after its call ("Connection pool is full, discarding connection", hundreds a minute
            # at 200 webhooks/s) and the next call pays the TCP and TLS handshakes again.
            # Connections are still opened only on demand.
            self.mount(prefix, HTTPAdapter(pool_maxsize=settings.WORKER_CONCURRENCY))

    def merge_environment_settings(
        self, url: str, proxies: dict[str, str] | None, stream: bool | None, verify: bool | str | None, cert: Any
    ) -> dict[str, Any]:
        parts = urlsplit(url)
        environment = _environment_settings(parts.scheme, parts.netloc)
        # As requests merges them: explicit proxies win, an explicit bundle or False stays.
        proxies = {**environment["proxies"], **(proxies or {})}
        if verify is None or verify is True:
            verify = environment["verify"]
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


@functools.cache
def _environment_settings(scheme: str, netloc: str) -> dict[str, Any]:
    """What requests would take from the environment for this address (HTTPS_PROXY, NO_PROXY,
    REQUESTS_CA_BUNDLE…), read the way it reads them."""
    merged = requests.Session().merge_environment_settings(f"{scheme}://{netloc}/", {}, None, None, None)
    return {"proxies": merged["proxies"], "verify": merged["verify"]}


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


def describe_template(*, name: str, language: str, parameters: list[str]) -> str:
    """How a template message reads where the template itself is not rendered (inbox, simulator)."""
    return f"[template {name} ({language})" + (f": {' | '.join(parameters)}]" if parameters else "]")


class Transport:
    """One conversation's channel: how its customer is reached and what the channel can do.

    Chosen once per conversation by `conversations.providers.for_conversation`. Each channel
    module subclasses it, keeping its own wire format; an operation a channel lacks raises
    Unsupported, and the `has_*` flags say so before anyone tries.
    """

    provider: ClassVar[str]  # a conversations.models.Provider value: who carries the messages
    label: ClassVar[str]  # how refusals name the channel
    has_templates: ClassVar[bool] = False  # approved templates (WhatsApp's way past the window)
    has_window: ClassVar[bool] = False  # WhatsApp's 24-hour customer-service window applies
    has_read_receipts: ClassVar[bool] = False  # mark_read shows the customer we read them
    has_media: ClassVar[bool] = False  # send_media can send a file
    has_sent_lookup: ClassVar[bool] = False  # find_sent can tell whether the provider took a message

    def __init__(self, *, business_address: str, customer_id: str, phone_number: str = "") -> None:
        self.business_address = business_address  # where the customer wrote to; replies go out from it
        self.customer_id = customer_id  # the provider's stable id of the customer (profile.external_id)
        self.phone_number = phone_number  # E.164, when the provider gave one

    def send_text(self, body: str, *, client_ref: str) -> SendResult:
        """Send one text message; raises a ProviderError subclass on failure."""
        raise NotImplementedError  # every channel carries text

    def send_template(self, *, name: str, language: str, parameters: list[str], client_ref: str) -> SendResult:
        """Send an approved template with its body parameters."""
        raise Unsupported(f"{self.label} has no message templates")

    def send_media(self, *, url: str, kind: str, caption: str = "", filename: str = "", client_ref: str) -> SendResult:
        """Send the file at a public HTTPS `url` (the provider fetches it); `kind` is image, audio,
        video or document."""
        raise Unsupported(f"{self.label} cannot send files")

    def mark_read(self, provider_message_id: str) -> None:
        """Show the customer their message was read (and, where the channel has it, that we type)."""
        raise Unsupported(f"{self.label} has no read receipts")

    def find_sent(self, *, body: str, since: datetime) -> list[StatusUpdate]:
        """The messages with this body the provider took from the business address to this
        customer since `since`, newest first: an empty list proves it took none. Settles a send
        whose answer was lost. Raises Unsupported where the provider has no such lookup, and
        TransientProviderError when the lookup failed or could not tell."""
        raise Unsupported(f"{self.label} cannot look up what it was sent")

    def download_media(self, ref: str, *, max_bytes: int, allowed_types: frozenset[str] | None) -> safe_http.Download:
        """Fetch an inbound file by the reference its webhook gave; raises safe_http.MediaFetchError."""
        raise Unsupported(f"{self.label} carries no files from customers")

    @classmethod
    def delete_remote_copy(cls, *, remote_id: str) -> bool:
        """Delete a copy the provider keeps (an erasure outlives the conversation, hence a class
        method); False when it was gone already. Raises RemoteDeletionError."""
        raise Unsupported(f"{cls.label} keeps no copies to delete")
