"""Which transport carries a conversation: chosen here, and nowhere else.

Services ask `for_conversation(conversation)` and call what it returns (`send_text`,
`send_template`, `send_media`, `mark_read`, `download_media`, `find_sent`); its `has_*` flags say
what the channel cannot do. Adding a channel: a module with its Transport subclass, and one line below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from conversations.models import Channel

from . import meta, simulator, twilio, webchat
from .base import Transport, Unsupported

if TYPE_CHECKING:
    from conversations.models import Conversation

__all__ = ["Transport", "Unsupported", "for_conversation", "for_provider", "transport_class_for"]

# Checked first: a business address with a transport of its own, whatever the channel says.
# Simulated customers write in Meta's format, yet are answered on their page even when Meta is configured.
_BY_BUSINESS_ADDRESS: dict[str, type[Transport]] = {
    simulator.SIMULATOR_NUMBER_ID: simulator.SimulatorTransport,
}
_BY_CHANNEL: dict[str, type[Transport]] = {
    Channel.META_WHATSAPP: meta.MetaTransport,
    Channel.TWILIO_WHATSAPP: twilio.TwilioWhatsAppTransport,
    Channel.TWILIO_SMS: twilio.TwilioSmsTransport,
    Channel.WEBCHAT: webchat.WebchatTransport,
}


def transport_class_for(conversation: Conversation) -> type[Transport]:
    """The conversation's transport class: its capability flags, without loading the customer."""
    return _BY_BUSINESS_ADDRESS.get(conversation.business_address) or _BY_CHANNEL[conversation.channel]


def for_conversation(conversation: Conversation) -> Transport:
    """The transport that reaches this conversation's customer from the number they wrote to."""
    profile = conversation.profile
    return transport_class_for(conversation)(
        business_address=conversation.business_address,
        customer_id=profile.external_id,
        phone_number=profile.phone_number,
    )


class _ReplaySigner(Protocol):
    def __call__(self, *, url: str, body: bytes, fresh_ids: bool) -> tuple[bytes, dict[str, str]]: ...


# Who can sign a captured webhook again for `replay_webhook`: the providers that sign theirs.
_REPLAY_SIGNERS: dict[str, _ReplaySigner] = {
    meta.MetaTransport.provider: meta.signed_replay,
    twilio.TwilioTransport.provider: twilio.signed_replay,
}


def signed_replay(*, provider: str, url: str, body: bytes, fresh_ids: bool = False) -> tuple[bytes, dict[str, str]]:
    """A captured delivery of `provider`, signed anew for `url`: (body, headers)."""
    try:
        signer = _REPLAY_SIGNERS[provider]
    except KeyError:
        raise ValueError(f"cannot replay {provider} webhooks") from None
    return signer(url=url, body=body, fresh_ids=fresh_ids)


def for_provider(provider: str) -> type[Transport]:
    """The transport class of a provider, for what outlives a conversation (deleting remote copies)."""
    for transport in _BY_CHANNEL.values():
        if transport.provider == provider:
            return transport
    raise LookupError(f"no transport for provider {provider!r}")
