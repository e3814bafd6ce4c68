"""The logs of a full message round trip (signed webhook -> reply -> send) carry no full phone
number, no message body at INFO and above, and no token or secret, as written by the handler
settings.LOGGING configures (with its phone-masking filter)."""

import io
import logging

import pytest

from conversations.tests import helpers
from conversations.tests.fakes import GRAPH_MESSAGES, TWILIO_MESSAGES
from conversations.tests.helpers import meta_body, post_meta, post_twilio, twilio_params
from whatsbot_project.logging import MaskPhoneNumbers

pytestmark = pytest.mark.django_db

INBOUND_TEXT = "Hi! What are your opening hours?"
REPLY_TEXT = "We open at nine, Ada."


class Capture:
    """The configured console handler, writing to a buffer; records kept to check their levels."""

    def __init__(self, handler: logging.StreamHandler) -> None:
        self.handler = handler
        self.buffer = io.StringIO()
        self.lines: list[tuple[int, str]] = []

    def __enter__(self) -> "Capture":
        self.previous = self.handler.setStream(self.buffer)
        self.root_level = logging.getLogger().level
        logging.getLogger().setLevel(logging.DEBUG)
        self.handler.addFilter(self._keep)
        return self

    def __exit__(self, *exc) -> None:
        self.handler.removeFilter(self._keep)
        self.handler.setStream(self.previous)
        logging.getLogger().setLevel(self.root_level)

    def _keep(self, record: logging.LogRecord) -> bool:
        self.lines.append((record.levelno, self.handler.format(record)))
        return True

    def text(self, min_level: int = logging.DEBUG) -> str:
        return "\n".join(line for level, line in self.lines if level >= min_level)


@pytest.fixture
def console():
    [handler] = [h for h in logging.getLogger().handlers if any(isinstance(f, MaskPhoneNumbers) for f in h.filters)]
    with Capture(handler) as capture:
        yield capture


def secrets(settings) -> list[str]:
    return [
        settings.WHATSAPP_ACCESS_TOKEN,
        settings.WHATSAPP_APP_SECRET,
        settings.WHATSAPP_VERIFY_TOKEN,
        settings.TWILIO_AUTH_TOKEN,
        settings.OPENAI_API_KEY,
        settings.SECRET_KEY,
        helpers.meta_signature(meta_body("text")).removeprefix("sha256="),
    ]


def test_a_meta_round_trip_logs_no_number_no_body_and_no_secret(client, graph_ok, fake_openai, console, settings):
    fake_openai.answer(REPLY_TEXT)

    post_meta(client, meta_body("text"))
    # A library logging the number it called (the filter sits in the handler, for every logger).
    logging.getLogger("some.library").warning("POST to +15551234567 took 2s")

    assert graph_ok.sent(GRAPH_MESSAGES)[0]["text"]["body"] == REPLY_TEXT  # the round trip happened
    assert "Recorded inbound text message" in console.text(logging.INFO)
    assert "Sent message" in console.text(logging.INFO)
    assert "POST to +1555***67 took 2s" in console.buffer.getvalue()
    everything = console.text()
    assert "5551234567" not in everything and "5551234567" not in console.buffer.getvalue()
    assert INBOUND_TEXT not in console.text(logging.INFO) and REPLY_TEXT not in console.text(logging.INFO)
    for secret in secrets(settings):
        assert secret not in everything


def test_a_twilio_round_trip_logs_no_number_no_body_and_no_secret(client, twilio_ok, fake_openai, console, settings):
    fake_openai.answer(REPLY_TEXT)

    post_twilio(client, twilio_params("whatsapp_text"))

    assert twilio_ok.sent(TWILIO_MESSAGES)[0]["Body"] == REPLY_TEXT
    everything = console.text()
    assert "Sent message" in everything
    assert "5551234567" not in everything
    assert INBOUND_TEXT not in console.text(logging.INFO) and REPLY_TEXT not in console.text(logging.INFO)
    for secret in secrets(settings):
        assert secret not in everything
