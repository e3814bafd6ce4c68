import io
import logging
import sys

import pytest

from whatsbot_project.celery import _use_django_logging
from whatsbot_project.logging import MaskPhoneNumbers, mask_phone


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reply to +15551234567 failed", "reply to +1555***67 failed"),
        ("from whatsapp:+393471234567", "from whatsapp:+3934***67"),
        ("wa_id 15551234567 seen", "wa_id 1555***67 seen"),
        ("call +1 555-123-4567 now", "call +1555***67 now"),
        ("Twilio refused +15551234567.", "Twilio refused +1555***67."),
        ("(to +15551234567), then", "(to +1555***67), then"),
        ("POST /Messages.json To=%2B15551234567&Body=x", "POST /Messages.json To=+1555***67&Body=x"),
        ("write to ada.lovelace@example.com today", "write to a***@example.com today"),
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


@pytest.mark.parametrize(
    "text",
    [
        "Task conversations.tasks.send_outbound_message[12345678-1234-4234-9234-123456789012] succeeded",
        "message uid 5f0d4ce0-9633-4562-bcd9-38e5f7f7c948 sent",
        "10.0.0.1:8000 answered in 3.14159265 s",
    ],
)
def test_it_leaves_task_ids_addresses_and_decimals_alone(text):
    record = logging.LogRecord("x", logging.INFO, __file__, 1, text, None, None)

    MaskPhoneNumbers().filter(record)

    assert record.getMessage() == text


def test_it_masks_numbers_in_tracebacks():
    try:
        raise ValueError("The 'To' number +15551234567 is not a valid phone number.")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "send failed", None, sys.exc_info())

    MaskPhoneNumbers().filter(record)
    written = logging.Formatter().format(record)

    assert "+15551234567" not in written
    assert "+1555***67 is not a valid phone number" in written


def test_a_handler_configured_anywhere_writes_masked_records():
    # A handler of a library's or a server's own (gunicorn's, a test's): no filter of ours on it.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("some.library.with.its.own.handler")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("To=%s refused: %s", "%2B15551234567", "email ada@example.com, number +15551234567.")
        try:
            raise ValueError("The 'To' number +15551234567 is not a valid phone number.")
        except ValueError:
            logger.exception("send failed for task 12345678-1234-4234-9234-123456789012")
    finally:
        logger.removeHandler(handler)

    written = stream.getvalue()
    assert "5551234567" not in written and "ada@" not in written
    assert "To=+1555***67 refused: email a***@example.com, number +1555***67." in written
    assert "12345678-1234-4234-9234-123456789012" in written


def test_a_malformed_log_call_is_written_masked_and_raises_nothing(caplog):
    logging.getLogger("x").warning("two %s %s", "+15551234567")

    assert "5551234567" not in caplog.text and "+1555***67" in caplog.text


def test_the_worker_and_beat_logging_setup_is_the_settings_one_with_masking():
    _use_django_logging()

    [handler] = logging.getLogger().handlers
    assert any(isinstance(f, MaskPhoneNumbers) for f in handler.filters)
    record = logging.getLogger("celery.app.trace").makeRecord(
        "celery.app.trace", logging.ERROR, __file__, 1, "Task %s raised: %s", ("t", "21211 +15551234567"), None
    )
    assert record.getMessage() == "Task t raised: 21211 +1555***67"
