"""A logging filter that masks phone numbers in every record before it is written."""

from __future__ import annotations

import logging
import re

# 8 to 15 digits (E.164 and local formats), single spaces or hyphens allowed between them.
# Dots are not, so IP addresses and decimals stay readable.
_PHONE = re.compile(r"(?<![\w.:/-])\+?\d(?:[ \-]?\d){7,14}(?![\w.])")


def mask_phone(value: str) -> str:
    """'+15551234567' -> '+1555***67': enough to tell numbers apart, not enough to call one."""
    digits = re.sub(r"\D", "", value)
    prefix = "+" if value.startswith("+") else ""
    return f"{prefix}{digits[:4]}***{digits[-2:]}"


class MaskPhoneNumbers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _PHONE.sub(lambda m: mask_phone(m.group(0)), message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
