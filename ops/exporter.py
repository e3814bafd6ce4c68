"""What `/metrics` serves: the counters every process wrote, and gauges read at scrape time.

Counters and histograms come from the processes that observed them (telemetry/metrics.py;
summed across processes in multiprocess mode). Queue depths and waiting ages are read here,
when Prometheus asks: they describe the system, not one process, and stay right after restarts.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Max, Min
from django.http import HttpRequest
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conversations.dispatch import queue_depths, queue_names
from conversations.models import Message, ProcessedMessage, WorkerHeartbeat
from telemetry.metrics import MULTIPROCESS_DIR

logger = logging.getLogger(__name__)


def is_scrape_allowed(request: HttpRequest) -> bool:
    """A bearer token equal to METRICS_TOKEN, or a client address in METRICS_ALLOWED_IPS."""
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_IPS)


def render_metrics() -> bytes:
    registry = CollectorRegistry()
    if MULTIPROCESS_DIR:
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(_SystemState())
    return generate_latest(registry)


class _ThisProcess(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class _SystemState(Collector):
    """Gauges read from the broker and the database at scrape time; a source that is down
    leaves its gauges out (the readiness check names it), never the whole scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from _queue_depths()
        yield from _waiting_ages()


def _queue_depths() -> Iterator[Metric]:
    depths = queue_depths(queue_names())
    if depths is None:
        return
    gauge = GaugeMetricFamily("whatsbot_celery_queue_depth", "Tasks waiting in a Celery queue.", labels=["queue"])
    for queue, depth in depths.items():
        gauge.add_metric([queue], depth)
    yield gauge


def _waiting_ages() -> Iterator[Metric]:
    now = timezone.now()
    try:
        recording = ProcessedMessage.objects.filter(pending__isnull=False, quarantined_at__isnull=True).aggregate(
            at=Min("received_at")
        )["at"]
        reply = Message.objects.filter(
            direction=Message.Direction.INBOUND,
            author=Message.Author.CUSTOMER,
            status__in=[Message.Status.RECEIVED, Message.Status.PROCESSING],
        ).aggregate(at=Min("created_at"))["at"]
        heartbeat = WorkerHeartbeat.objects.aggregate(at=Max("beat_at"))["at"]
    except Exception as exc:
        logger.warning("Waiting ages not scraped: database unavailable (%s).", type(exc).__name__)
        return
    waiting = GaugeMetricFamily(
        "whatsbot_oldest_waiting_seconds", "Age of the oldest item waiting, 0 when none.", labels=["what"]
    )
    waiting.add_metric(["recording"], (now - recording).total_seconds() if recording else 0.0)
    waiting.add_metric(["reply"], (now - reply).total_seconds() if reply else 0.0)
    yield waiting
    if heartbeat is not None:
        yield GaugeMetricFamily(
            "whatsbot_worker_heartbeat_age_seconds",
            "Since the newest worker heartbeat.",
            (now - heartbeat).total_seconds(),
        )
