import logging

import pytest

from whatsbot_project.logging import MaskPhoneNumbers, mask_phone


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reply to +15551234567 failed", "reply to +1555***67 failed"),
        ("from whatsapp:+393471234567", "from whatsapp:+3934***67"),
        ("wa_id 15551234567 seen", "wa_id 1555***67 seen"),
        ("call +1 555-123-4567 now", "call +1555***67 now"),
    ],
)
def test_it_masks_phone_numbers(text, expected):
    record = logging.LogRecord("x", logging.INFO, __file__, 1, text, None, None)

    MaskPhoneNumbers().filter(record)

    assert record.getMessage() == expected


def test_it_masks_numbers_passed_as_arguments_and_leaves_ips_and_ids_alone():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "%s from %s, message %s", ("+15551234567", "127.0.0.1", 42), None
    )

    MaskPhoneNumbers().filter(record)

    assert record.getMessage() == "+1555***67 from 127.0.0.1, message 42"


def test_mask_phone_keeps_the_plus():
    assert mask_phone("+447700900123") == "+4477***23"
