"""What a provider module may pass on: clean, bounded values, or a refusal that says why.

Everything a webhook accepts is stored as JSON (PostgreSQL jsonb) and later in varchar/text
columns. Neither holds a NUL or a lone surrogate (Python's json module lets both through), and
each varchar has its length. So identifiers that do not fit are refused (truncating one would
point at another customer, number or message) and free text is cleaned and cut to size.
Refusal reasons name fields, never their values: they are logged, and values are personal data.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from conversations.models import Attachment, Conversation, Message
from profiles.models import ClientProfile


def _max_length(model: Any, name: str) -> int:
    return model._meta.get_field(name).max_length


MESSAGE_ID_CHARS = _max_length(Message, "provider_message_id")
EXTERNAL_ID_CHARS = _max_length(ClientProfile, "external_id")
PHONE_CHARS = _max_length(ClientProfile, "phone_number")
DISPLAY_NAME_CHARS = _max_length(ClientProfile, "display_name")
BUSINESS_ADDRESS_CHARS = _max_length(Conversation, "business_address")
MEDIA_REF_CHARS = _max_length(Attachment, "provider_ref")
MIME_TYPE_CHARS = _max_length(Attachment, "content_type")
SHA256_CHARS = _max_length(Attachment, "sha256")
FILENAME_CHARS = _max_length(Attachment, "original_filename")
ERROR_CODE_CHARS = _max_length(Message, "error_code")
ERROR_TITLE_CHARS = _max_length(Message, "error_title")
# WhatsApp's own limit on a text message; a text column has none, the webhook body has 4 MB.
TEXT_CHARS = 65_536
# The message type names a kind; none is longer than this.
TYPE_CHARS = 64
# Unix seconds before 2100: a 30-digit "timestamp" is no time at all (and overflows datetime).
_LATEST_TIMESTAMP = 4_102_444_800

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Refused(ValueError):
    """One message or status that cannot be passed on; the reason names the field, not its value."""


def clean_text(value: str) -> str:
    """The text without NUL and with lone surrogates as U+FFFD: what PostgreSQL can store.

    (json.loads joins a valid surrogate pair into one character, so any surrogate left is lone.)
    """
    if "\x00" in value:
        value = value.replace("\x00", "")
    return _LONE_SURROGATE.sub("\ufffd", value)


def free_text(container: Mapping[str, Any], key: str, *, limit: int = TEXT_CHARS) -> str:
    """Free text (what a customer wrote, a name, a caption): cleaned and cut to `limit`."""
    value = container.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Refused(f"{key} is not a string")
    return clean_text(value)[:limit]


def identifier(value: Any, what: str, *, limit: int, required: bool = True) -> str:
    """An id, address or reference, exactly as given or refused: printable (no NUL, control
    character or surrogate) and within `limit`, since a shortened one would name something else."""
    if value is None or value == "":
        if required:
            raise Refused(f"{what} missing")
        return ""
    if not isinstance(value, str):
        raise Refused(f"{what} is not a string")
    if len(value) > limit:
        raise Refused(f"{what} longer than {limit} characters")
    if not value.isprintable():
        raise Refused(f"{what} has unprintable characters")
    return value


def nested(container: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A nested object, {} when absent."""
    value = container.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Refused(f"{key} is not an object")
    return value


def e164(digits: str) -> str:
    """E.164 from a provider's digits (with or without `+`); "" when they are not a number."""
    bare = digits.removeprefix("+")
    if bare.isascii() and bare.isdigit() and len(bare) < PHONE_CHARS:
        return f"+{bare}"
    return ""


# What may surround the digits of a number written for people: "+1 555-000-1234".
_NUMBER_PUNCTUATION = str.maketrans("", "", " -().")


def is_own_number(sender: str, business_number: str) -> bool:
    """Whether a message's sender is the business's own number: the same address, or the same
    phone number however each is written (Meta's `from` and `display_phone_number` are digits,
    with or without `+`, spaces or dashes). Its messages are the business's, never a customer's:
    a test from the business's own phone, a bot answering itself."""
    if not sender or not business_number:
        return False
    number = _as_number(sender)
    return sender == business_number or (bool(number) and number == _as_number(business_number))


def _as_number(address: str) -> str:
    return e164(address.translate(_NUMBER_PUNCTUATION))


def unix_time(value: Any) -> datetime | None:
    """Unix seconds (Meta sends a string of digits) as an aware datetime; None when they are not
    a plausible time. The time is only informative: a message is not refused for it."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        seconds = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        return None
    if not 0 < seconds < _LATEST_TIMESTAMP:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)


def echoed_ref(value: Any) -> str:
    """Our reference echoed back by the provider: a Message uid, or `<uid>#<part index>` for an
    early part of a split reply (MessagePart.client_ref); "" for anything else (another app on
    the same account may use the field; nothing else can match one of ours anyway)."""
    if not isinstance(value, str) or len(value) > 40:
        return ""
    uid, separator, index = value.partition("#")
    if separator and not (index.isascii() and index.isdigit() and len(index) <= 3):
        return ""
    try:
        return str(uuid.UUID(uid)) + (f"#{index}" if separator else "")
    except ValueError:
        return ""
