from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conversations.tests.fakes import GRAPH_MESSAGES
from conversations.tests.helpers import meta_body, post_meta
from ops import exporter
from telemetry import metrics

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_are_refused_to_an_unlisted_address_without_the_token(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    outside = {"REMOTE_ADDR": "203.0.113.9"}

    assert client.get("/metrics", **outside).status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **outside).status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret", **outside).status_code == 200


def test_metrics_are_served_to_an_allowed_network(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]

    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_a_webhook_round_trip_shows_in_the_counters_and_histograms(client, settings, graph_ok, fake_openai):
    settings.MODEL_PRICES = {"gpt-test": {"input": 1.0, "output": 2.0}}
    fake_openai.answer("We open at 9.", input_tokens=42, output_tokens=7)
    before = scrape(client)

    assert post_meta(client, meta_body("text")).status_code == 200
    assert post_meta(client, meta_body("text")).status_code == 200  # Meta retries: a duplicate
    assert post_meta(client, meta_body("text"), signature="sha256=" + "0" * 64).status_code == 403
    assert post_meta(client, b"{not json").status_code == 400
    after = scrape(client)

    def delta(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1
    for outcome in ("accepted", "duplicate", "refused_signature", "malformed"):
        assert delta("whatsbot_webhooks_total", provider="meta", outcome=outcome) == 1, outcome
    assert delta("whatsbot_webhook_ack_seconds_count", provider="meta") == 4
    assert delta("whatsbot_recording_lag_seconds_count") == 1
    assert delta("whatsbot_model_calls_total", model="gpt-test", purpose="reply", outcome="ok") == 1
    assert delta("whatsbot_model_tokens_total", model="gpt-test", purpose="reply", kind="input") == 42
    assert delta("whatsbot_model_tokens_total", model="gpt-test", purpose="reply", kind="output") == 7
    assert delta("whatsbot_model_cost_total", model="gpt-test", purpose="reply") == pytest.approx(56e-6)
    assert delta("whatsbot_model_call_seconds_count", model="gpt-test", purpose="reply") == 1
    assert delta("whatsbot_sends_total", channel="meta_whatsapp", status="sent", error_code="") == 1
    assert delta("whatsbot_reply_latency_seconds_count", channel="meta_whatsapp") == 1
    assert value(after, "whatsbot_oldest_waiting_seconds", what="reply") == 0


def test_no_label_carries_a_phone_number_or_a_message_id(client, graph_ok, fake_openai):
    post_meta(client, meta_body("text"))

    text = client.get("/metrics").content.decode()

    assert "15551234567" not in text
    assert "wamid" not in text


def test_the_grafana_dashboard_uses_only_metrics_the_app_exports():
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json").read_text())
    used = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"whatsbot_\w+", target["expr"])
    }
    # Every metric the app defines (telemetry/metrics.py) or reads at scrape time (ops/exporter.py).
    sources = [Path(module.__file__).read_text() for module in (metrics, exporter)]
    exported = {re.sub(r"_total$", "", name) for source in sources for name in re.findall(r'"(whatsbot_\w+)"', source)}
    assert len(used) >= 14
    assert sorted(used - exported) == []


def test_a_status_webhook_counts_as_accepted_not_as_a_duplicate(client):
    before = scrape(client)

    assert post_meta(client, meta_body("status_delivered")).status_code == 200

    after = scrape(client)
    for outcome, expected in (("accepted", 1), ("duplicate", 0)):
        labels = {"provider": "meta", "outcome": outcome}
        assert (
            value(after, "whatsbot_webhooks_total", **labels) - value(before, "whatsbot_webhooks_total", **labels)
            == expected
        )
