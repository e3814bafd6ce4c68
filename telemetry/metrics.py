"""Prometheus metrics: every one the project exports, and the only module that defines them.

Services report through the small functions below (never the metric objects), so label values
are bounded in one place: no phone numbers, message ids or free text, only the enums of
providers, channels, outcomes and statuses, configured model names and provider error codes
(short codes, anything else counted as "other").

With PROMETHEUS_MULTIPROC_DIR set (production: gunicorn's workers, the Celery worker and beat
share a directory), each process writes its values to memory-mapped files there and `/metrics`
sums them (ops/views.py). Files are named after host and pid, so containers that share the
directory (docker-compose.yml) never write to the same file; those of ended processes are removed
at start (telemetry/multiprocess.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

from prometheus_client import Counter, Histogram, values

from telemetry import multiprocess
from telemetry.prices import price_of

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if MULTIPROCESS_DIR:
    # Before any metric exists: their values are created with this class.
    values.ValueClass = values.MultiProcessValue(lambda: multiprocess.claim_process_name(MULTIPROCESS_DIR))

_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")
# Seconds: from a webhook's milliseconds to a slow model's tens of seconds.
_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_SLOW = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)

WEBHOOKS = Counter(
    "whatsbot_webhooks", "Provider webhook deliveries by outcome.", ["provider", "outcome"]
)  # fmt: skip
WEBHOOK_ACK_SECONDS = Histogram(
    "whatsbot_webhook_ack_seconds", "Time to answer a provider webhook.", ["provider"], buckets=_FAST
)
RECORDING_LAG_SECONDS = Histogram(
    "whatsbot_recording_lag_seconds", "From a webhook accepting a message to a worker recording it.", buckets=_FAST
)
REPLY_LATENCY_SECONDS = Histogram(
    "whatsbot_reply_latency_seconds",
    "From a customer message stored to the bot's reply accepted by the provider.",
    ["channel"],
    buckets=_SLOW,
)
MODEL_CALLS = Counter("whatsbot_model_calls", "Model calls.", ["model", "purpose", "outcome"])
MODEL_CALL_SECONDS = Histogram(
    "whatsbot_model_call_seconds", "Duration of one model call.", ["model", "purpose"], buckets=_SLOW
)
MODEL_TOKENS = Counter("whatsbot_model_tokens", "Model tokens.", ["model", "purpose", "kind"])
MODEL_COST = Counter(
    "whatsbot_model_cost", "Model cost in MODEL_PRICE_CURRENCY (MODEL_PRICES).", ["model", "purpose"]
)  # fmt: skip
SENDS = Counter(
    "whatsbot_sends", "Outbound sends by channel and final status of the attempt.", ["channel", "status", "error_code"]
)
DELIVERY_FAILURES = Counter(
    "whatsbot_delivery_failures", "Failed statuses reported by the provider after a send.", ["provider", "error_code"]
)
TAKEOVERS = Counter("whatsbot_takeovers", "Conversations taken over or handed back by staff.", ["action"])
HUMAN_REQUESTS = Counter("whatsbot_human_requests", "Customers asking for a person.", ["source"])
GDPR_JOBS = Counter("whatsbot_gdpr_jobs", "GDPR exports, erasures and purges.", ["job", "outcome"])
OUTGOING_WEBHOOKS = Counter(
    "whatsbot_outgoing_webhooks", "Outgoing webhook delivery attempts.", ["event", "outcome"]
)  # fmt: skip


def code_label(code: str) -> str:
    """A provider error code as a label: short codes as they are, anything else "other"."""
    if not code:
        return ""
    return code if _CODE.match(code) else "other"


def model_label(model: str) -> str:
    return model if _CODE.match(model or "") else "other"


def count_webhook(*, provider: str, outcome: str, seconds: float) -> None:
    """outcome: accepted, duplicate, refused_signature, malformed, too_large."""
    WEBHOOKS.labels(provider, outcome).inc()
    WEBHOOK_ACK_SECONDS.labels(provider).observe(seconds)


def observe_recording_lag(seconds: float) -> None:
    RECORDING_LAG_SECONDS.observe(max(seconds, 0.0))


def observe_reply_latency(*, channel: str, seconds: float) -> None:
    REPLY_LATENCY_SECONDS.labels(channel).observe(max(seconds, 0.0))


def count_send(*, channel: str, status: str, error_code: str = "") -> None:
    SENDS.labels(channel, status, code_label(error_code)).inc()


def count_delivery_failure(*, provider: str, error_code: str) -> None:
    DELIVERY_FAILURES.labels(provider, code_label(error_code)).inc()


def count_takeover(*, action: str) -> None:
    """action: take_over, assign, hand_back, idle_hand_back."""
    TAKEOVERS.labels(action).inc()


def count_human_request(*, source: str) -> None:
    """source: keyword, model."""
    HUMAN_REQUESTS.labels(source).inc()


def count_gdpr_job(*, job: str, outcome: str) -> None:
    GDPR_JOBS.labels(job, outcome).inc()


def count_outgoing_webhook(*, event: str, outcome: str) -> None:
    OUTGOING_WEBHOOKS.labels(event, outcome).inc()


class ModelCall:
    """What a measured model call reports back: the model that answered and its tokens."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.input_tokens = 0
        self.output_tokens = 0

    def used(self, *, model: str = "", input_tokens: int | None = None, output_tokens: int | None = None) -> None:
        self.model = model or self.model
        self.input_tokens += input_tokens or 0
        self.output_tokens += output_tokens or 0


@contextmanager
def measure_model_call(*, model: str, purpose: str) -> Iterator[ModelCall]:
    """Count one model call, its duration, tokens and estimated cost; outcome error if it raises."""
    call = ModelCall(model)
    started = perf_counter()
    outcome = "error"
    try:
        yield call
        outcome = "ok"
    finally:
        name = model_label(call.model)
        MODEL_CALLS.labels(name, purpose, outcome).inc()
        MODEL_CALL_SECONDS.labels(name, purpose).observe(perf_counter() - started)
        if call.input_tokens or call.output_tokens:
            MODEL_TOKENS.labels(name, purpose, "input").inc(call.input_tokens)
            MODEL_TOKENS.labels(name, purpose, "output").inc(call.output_tokens)
            cost = price_of(model=call.model, input_tokens=call.input_tokens, output_tokens=call.output_tokens)
            if cost:
                MODEL_COST.labels(name, purpose).inc(float(cost))
