"""Personal data out of the logs: one filter, on every handler of every process.

Phone numbers and email addresses are masked in the message, its arguments and any traceback
(a provider's error often echoes the number it refused). `configure_logging` (settings'
LOGGING_CONFIG, and Celery's setup_logging signal in whatsbot_project/celery.py) applies
settings.LOGGING, whose console handler carries the filter, and then installs the same masking
where each log record is made: a handler configured anywhere else (gunicorn's, a library's, a
test's) writes masked records too, in web, worker, beat and management command processes alike.
"""

from __future__ import annotations

import logging
import logging.config
import re
from collections.abc import Callable
from typing import Any

# One pass over the text: a UUID (Celery task ids, our message uids) is matched first and kept
# as it is, so its digit groups are never taken for a phone number.
_TOKEN = re.compile(
    r"(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)"
    # An email address (local part masked, domain kept: enough to tell a provider from another).
    r"|(?P<email>\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b)"
    # A phone number: 8 to 15 digits, E.164 or local, single spaces or hyphens between digits,
    # after a `+`, `%2B` (URL-encoded), `whatsapp:` or a non-word character. Not inside a longer
    # word or number, nor an IP address or decimal (a dot followed by a digit on either side).
    r"|(?P<phone>(?:\+|%2[bB]|(?<![\w.:/+%-]))\d(?:[ \-]?\d){7,14}(?!\w)(?!\.\d))"
)


def mask_phone(value: str) -> str:
    """'+15551234567' -> '+1555***67': enough to tell numbers apart, not enough to call one."""
    digits = re.sub(r"\D", "", value.replace("%2B", "").replace("%2b", ""))
    prefix = "+" if value.startswith(("+", "%2B", "%2b")) else ""
    return f"{prefix}{digits[:4]}***{digits[-2:]}"


def mask_email(value: str) -> str:
    """'ada@example.com' -> 'a***@example.com'."""
    local, _, domain = value.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _masked(match: re.Match[str]) -> str:
    if match.lastgroup == "phone":
        return mask_phone(match.group(0))
    if match.lastgroup == "email":
        return mask_email(match.group(0))
    return match.group(0)


def mask_personal_data(text: str) -> str:
    """The text with every phone number and email address masked."""
    return _TOKEN.sub(_masked, text)


class MaskPhoneNumbers(logging.Filter):
    """Masks phone numbers and email addresses in a record before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_personal_data(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Formatters render the traceback from exc_text when it is set: mask it once here.
            record.exc_text = mask_personal_data(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_personal_data(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_personal_data(record.stack_info)
        return True


def configure_logging(config: dict[str, Any]) -> None:
    """Apply a logging dictConfig, then mask every record of this process where it is made."""
    logging.config.dictConfig(config)
    install_record_masking()


def install_record_masking() -> None:
    """Mask personal data in every log record as it is created (once per process)."""
    if not isinstance(logging.getLogRecordFactory(), _MaskingRecordFactory):
        logging.setLogRecordFactory(_MaskingRecordFactory(logging.getLogRecordFactory()))


class _MaskingRecordFactory:
    def __init__(self, make_record: Callable[..., logging.LogRecord]) -> None:
        self.make_record = make_record
        self.mask = MaskPhoneNumbers()

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.make_record(*args, **kwargs)
        try:
            self.mask.filter(record)
        except (TypeError, ValueError):
            # A malformed log call (arguments that do not fit the message): kept readable, masked.
            record.msg, record.args = mask_personal_data(f"{record.msg} {record.args!r}"), None
        return record
