from __future__ import annotations

import io
import json
import logging

import pytest
import sentry_sdk
from django.utils.module_loading import import_string
from sentry_sdk.transport import Transport

from telemetry import context
from whatsbot_project.sentry import init_sentry, scrub_event


def json_logger(settings, stream: io.StringIO) -> logging.Logger:
    """A logger with the console handler of settings.LOGGING under LOG_FORMAT=json."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(import_string(settings.LOGGING["formatters"]["json"]["()"])())
    for name in settings.LOGGING["handlers"]["console"]["filters"]:
        handler.addFilter(import_string(settings.LOGGING["filters"][name]["()"])())
    logger = logging.getLogger("whatsbot.test.json")
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO
    return logger


def test_a_json_line_has_the_context_and_masks_numbers_in_messages_and_tracebacks(settings):
    stream = io.StringIO()
    logger = json_logger(settings, stream)

    with context.bound(request="req-1234abcd", conversation=42):
        try:
            raise ValueError("Twilio refused +15551234567")
        except ValueError:
            logger.exception("Send to %s failed", "+15551234567", extra={"request": "POST /x?to=+15551234567"})

    line = json.loads(stream.getvalue())
    assert line["level"] == "ERROR"
    assert line["logger"] == "whatsbot.test.json"
    assert line["message"] == "Send to +1555***67 failed"
    assert (line["request_id"], line["conversation_id"]) == ("req-1234abcd", 42)
    assert "task_id" not in line
    assert "ValueError: Twilio refused +1555***67" in line["exc_info"]
    assert "timestamp" in line
    assert "15551234567" not in stream.getvalue()
    assert "request" not in line  # extras never reach the line


def test_the_json_formatter_is_what_log_format_json_selects(settings):
    assert settings.LOGGING["formatters"]["json"] == {"()": "telemetry.logs.JsonFormatter"}
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["mask_phone_numbers"]


def test_sentry_events_leave_without_bodies_cookies_or_numbers():
    event = {
        "request": {
            "url": "https://bot.example.com/webhooks/twilio/",
            "data": {"Body": "my card is 4111", "From": "whatsapp:+15551234567"},
            "cookies": {"sessionid": "abc"},
            "headers": {"X-Twilio-Signature": "sig", "User-Agent": "TwilioProxy/1.1"},
        },
        "exception": {"values": [{"type": "IntegrityError", "value": "Key (phone)=(+15551234567) exists"}]},
        "breadcrumbs": {"values": [{"message": "mail to ada@example.com"}]},
    }

    scrubbed = scrub_event(event)

    assert "data" not in scrubbed["request"] and "cookies" not in scrubbed["request"]
    assert scrubbed["request"]["headers"]["X-Twilio-Signature"] == "[Filtered]"
    assert scrubbed["exception"]["values"][0]["value"] == "Key (phone)=(+1555***67) exists"
    assert scrubbed["breadcrumbs"]["values"][0]["message"] == "mail to a***@example.com"


class Captured(Transport):
    events: list = []

    def capture_envelope(self, envelope) -> None:
        for item in envelope.items:
            if item.type == "event":
                Captured.events.append(item.payload.json)


@pytest.fixture
def sentry():
    Captured.events = []
    init_sentry(dsn="https://public@sentry.invalid/1", environment="test", traces_sample_rate=0.0)
    sentry_sdk.get_client().transport = Captured(sentry_sdk.get_client().options)
    yield Captured.events
    sentry_sdk.init()  # no DSN: off again for the rest of the suite


def test_an_error_logged_by_the_app_reaches_sentry_scrubbed(sentry):
    logger = logging.getLogger("conversations.services.outbound")
    try:
        raise RuntimeError("Twilio refused whatsapp:+15551234567")
    except RuntimeError:
        logger.exception("Send to %s failed", "+15551234567")
    sentry_sdk.flush()

    [event] = sentry
    text = json.dumps(event)
    assert "15551234567" not in text
    assert "Twilio refused whatsapp:+1555***67" in text
    assert event["logentry"]["formatted"] == "Send to +1555***67 failed"
    assert event["environment"] == "test"
