"""Property: whatever a signed request carries, the webhook answers 200/204/400/403/413 (never a
5xx), and what it accepted the recorder stores, clean and within every column's length.

Bodies are the provider fixtures with fields replaced by arbitrary JSON values or strings
(NUL, lone surrogates, huge numbers, deep nesting, wrong types) or removed, signed and posted
through the test client. 100 examples per test by default; the fault suite runs 5 000 each (10 000
bodies) with WEBHOOK_FUZZ_EXAMPLES=5000 (and DATABASE_URL=postgres://… for PostgreSQL's own
refusals).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import models
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conversations.models import Attachment, Conversation, Message, ProcessedMessage
from conversations.providers.base import InboundMessage
from conversations.services.inbound import record_accepted
from profiles.models import ClientProfile, Contact

from .helpers import FIXTURES, PUBLIC_BASE_URL, meta_body, post_meta, twilio_params, twilio_signature

# 100 (hypothesis's own default) in `make test`: each example is a signed request, its recording
# and a cleanup (some 10 ms of CPU), and the two tests at 300 were a tenth of the quick suite's
# CPU. The seed is new every run (no example database), so the runs cover ever more bodies, and
# the fault suite (`make faults`, run by .ci/run) searches 5 000 a test.
EXAMPLES = int(os.environ.get("WEBHOOK_FUZZ_EXAMPLES", "100"))
# Real commits: a fuzzed delivery may repeat a message id, and the dedup gate's IntegrityError
# must not abort a test-wide transaction (PostgreSQL) for the examples after it. The suite's
# 120 s per test is for the default; a long run gets time in proportion.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(max(120, EXAMPLES // 4)),
    pytest.mark.usefixtures("no_worker"),  # for the whole test: a mock made per example cost 2 ms
]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis/ in the checkout; a failure prints its reproduction blob
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
ANSWERS = {200, 204, 400, 403, 413}

META_FIXTURES = sorted(path.stem for path in (FIXTURES / "meta").glob("*.json"))
TWILIO_INBOUND = ["sms_inbound", "whatsapp_image_caption", "whatsapp_location", "whatsapp_quick_reply_button",
                  "whatsapp_text", "whatsapp_voice_note"]  # fmt: skip
TWILIO_STATUS = ["status_delivered", "status_failed", "status_read"]
TWILIO_FIELDS = ["MessageSid", "SmsSid", "From", "To", "Body", "ProfileName", "NumMedia", "MediaUrl0",
                 "MediaContentType0", "MediaUrl1", "Latitude", "Longitude", "Label", "Address", "ButtonText",
                 "ButtonPayload", "AccountSid", "MessageType", "MessageStatus", "SmsStatus", "ErrorCode",
                 "ErrorMessage", "WaId"]  # fmt: skip

# Stands for a value nested `depth` deep, spliced into the JSON text (json.dumps would recurse).
DEEP = "\x01deep:{}\x01"

NASTY = ["", "\x00", "\ud800", "\udfff", "a\x00b", "\ud83d", "\ufffd", "9" * 30, "-1", "1e309", "0x1f",
         "x" * 129, "x" * 161, "x" * 1025, "whatsapp:", "whatsapp:+" + "1" * 40, "💬" * 300, " ", "\n"]  # fmt: skip
any_char = st.characters(exclude_categories=())  # surrogates included
strings = st.one_of(st.sampled_from(NASTY), st.text(any_char, max_size=40), st.text(any_char, min_size=100))
numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40), st.floats(), st.sampled_from([10**300, -(10**300), 2**63])
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
json_values = st.one_of(
    scalars,
    st.sampled_from([1, 50, 990, 1100, 5000]).map(DEEP.format),
    st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(strings, children, max_size=3),
        max_leaves=8,
    ),
)
# A form is UTF-8 on the wire: it cannot carry a lone surrogate (its bytes decode as U+FFFD).
FORM_NASTY = [text for text in NASTY if not any("\ud800" <= c <= "\udfff" for c in text)]
form_strings = st.one_of(st.sampled_from(FORM_NASTY), st.text(st.characters(exclude_categories=["Cs"]), max_size=60))


def paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from paths(child, (*prefix, key))


def replaced(payload: Any, path: tuple, value: Any, *, delete: bool) -> Any:
    if not path:
        return value
    parent = payload
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return payload


def serialise(payload: Any) -> bytes:
    """As Meta sends it: escaped unicode (so NUL and lone surrogates are \\u escapes)."""
    text = json.dumps(payload)
    for depth in (1, 50, 990, 1100, 5000):
        text = text.replace(json.dumps(DEEP.format(depth)), "[" * depth + "]" * depth)
    return text.encode()


def assert_recordable_and_clean() -> None:
    """Every accepted row records without error (one from the business's own number is accepted
    and, by design, never recorded), and every stored string fits its column."""
    for pk, pending in ProcessedMessage.objects.filter(pending__isnull=False).values_list("pk", "pending"):
        inbound = InboundMessage.from_json(pending)
        from_us = Conversation.objects.filter(business_address=inbound.external_user_id).exists()
        assert (record_accepted(processed_id=pk) is None) == from_us
    assert not ProcessedMessage.objects.filter(pending__isnull=False).exists()
    for model in (Contact, ClientProfile, Conversation, Message, Attachment):
        for row in model.objects.all():
            for field in model._meta.concrete_fields:
                value = getattr(row, field.attname)
                if not isinstance(value, str):
                    continue
                assert "\x00" not in value, (model.__name__, field.name)
                assert not any("\ud800" <= c <= "\udfff" for c in value), (model.__name__, field.name)
                if isinstance(field, models.CharField) and field.max_length:
                    assert len(value) <= field.max_length, (model.__name__, field.name, len(value))


def forget_everything() -> None:
    ProcessedMessage.objects.all().delete()
    Contact.objects.all().delete()  # cascades to identities, conversations, messages, attachments


@FUZZ
@given(data=st.data())
def test_any_signed_meta_body_gets_a_4xx_or_a_recordable_200(client, data):
    payload = json.loads(meta_body(data.draw(st.sampled_from(META_FIXTURES), label="fixture")))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="changes")):
        every_path = list(paths(payload))
        # Mostly inside a change's value (messages, statuses, contacts): the envelope is one shape.
        inner = [path for path in every_path if len(path) > 5] or every_path
        path = data.draw(st.sampled_from(inner) if data.draw(st.integers(0, 9)) else st.sampled_from(every_path))
        payload = replaced(payload, path, data.draw(json_values, label="value"), delete=data.draw(st.booleans()))
    body = serialise(payload)

    try:
        response = post_meta(client, body)
        assert response.status_code in ANSWERS, response.content[:300]
        event(f"{response.status_code} {response.content[:40]!r}")  # --hypothesis-show-statistics
        if response.status_code == 200:
            assert_recordable_and_clean()
        else:
            assert not ProcessedMessage.objects.exists()
    finally:
        forget_everything()


@FUZZ
@given(data=st.data())
def test_any_signed_twilio_form_gets_a_4xx_or_a_recordable_2xx(client, data):
    is_status = data.draw(st.booleans(), label="status callback")
    params = twilio_params(data.draw(st.sampled_from(TWILIO_STATUS if is_status else TWILIO_INBOUND)))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="changes")):
        name = data.draw(st.sampled_from(TWILIO_FIELDS) | st.sampled_from(sorted(params)), label="field")
        if data.draw(st.booleans(), label="remove"):
            params.pop(name, None)
        else:
            params[name] = data.draw(form_strings, label="value")
    path = "/webhooks/twilio/status/" if is_status else "/webhooks/twilio/"
    if is_status:
        path += "?" + urlencode({"ref": data.draw(form_strings, label="ref")})

    try:
        response = client.post(
            path,
            data=urlencode(params),
            content_type="application/x-www-form-urlencoded",
            HTTP_X_TWILIO_SIGNATURE=twilio_signature(PUBLIC_BASE_URL + path, params),
        )
        assert response.status_code in ANSWERS, response.content[:300]
        event(f"{response.status_code} {response.content[:40]!r}")  # --hypothesis-show-statistics
        if response.status_code in (200, 204):
            assert_recordable_and_clean()
        else:
            assert not ProcessedMessage.objects.exists()
    finally:
        forget_everything()
