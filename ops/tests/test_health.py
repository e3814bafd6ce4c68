from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from conversations.models import Channel, Conversation, Message, ProcessedMessage, WorkerHeartbeat
from profiles.models import ClientProfile, Contact, Provider

pytestmark = pytest.mark.django_db


@pytest.fixture
def live_worker():
    now = timezone.now()
    return WorkerHeartbeat.objects.create(name="celery@web-1", started_at=now, beat_at=now)


def _checks(response) -> dict[str, dict]:
    return {check["name"]: check for check in response.json()["checks"]}


def _failing(response) -> list[str]:
    return [check["name"] for check in response.json()["checks"] if not check["ok"]]


def test_healthz_answers_by_container_address_without_https(client, settings):
    settings.ALLOWED_HOSTS = ["bot.example.com"]
    settings.SECURE_SSL_REDIRECT = True

    response = client.get("/healthz/", HTTP_HOST="10.0.3.7:8000")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_with_a_live_worker_and_nothing_waiting(client, live_worker):
    response = client.get("/readyz/")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert set(_checks(response)) == {"database", "broker", "worker", "recording", "replies"}


def test_readyz_names_the_worker_when_no_heartbeat_was_ever_written(client):
    response = client.get("/readyz/")

    assert response.status_code == 503
    assert _failing(response) == ["worker"]
    assert _checks(response)["worker"]["detail"] == "no worker heartbeat yet"


def test_readyz_names_the_worker_when_its_heartbeat_is_stale(client, live_worker, settings):
    settings.READY_WORKER_HEARTBEAT_SECONDS = 30
    WorkerHeartbeat.objects.update(beat_at=timezone.now() - timedelta(seconds=31))

    response = client.get("/readyz/")

    assert response.status_code == 503
    assert _failing(response) == ["worker"]


def test_readyz_names_an_accepted_delivery_left_unrecorded(client, live_worker, settings):
    settings.READY_RECORDING_SECONDS = 60
    waiting = ProcessedMessage.objects.create(provider=Provider.META, provider_message_id="a" * 64, pending={})
    ProcessedMessage.objects.filter(pk=waiting.pk).update(received_at=timezone.now() - timedelta(seconds=61))

    response = client.get("/readyz/")

    assert response.status_code == 503
    assert _failing(response) == ["recording"]
    assert "61 s" in _checks(response)["recording"]["detail"]


def test_a_quarantined_delivery_does_not_make_the_app_unready(client, live_worker):
    old = timezone.now() - timedelta(hours=1)
    ProcessedMessage.objects.create(
        provider=Provider.META, provider_message_id="b" * 64, pending={}, quarantined_at=old
    )
    ProcessedMessage.objects.update(received_at=old)

    assert client.get("/readyz/").status_code == 200


def _customer_message(status: str, age_seconds: float) -> Message:
    profile = ClientProfile.objects.create(
        contact=Contact.objects.create(),
        provider=Provider.META,
        external_id=f"1555123{ClientProfile.objects.count():04d}",
    )
    conversation = Conversation.objects.create(profile=profile, channel=Channel.META_WHATSAPP, business_address="1")
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.INBOUND,
        author=Message.Author.CUSTOMER,
        text="hello",
        provider=Provider.META,
        status=status,
    )
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(seconds=age_seconds))
    return message


@pytest.mark.parametrize("status", [Message.Status.RECEIVED, Message.Status.PROCESSING])
def test_readyz_names_a_customer_message_waiting_too_long_for_its_answer(client, live_worker, settings, status):
    settings.READY_REPLY_SECONDS = 120
    _customer_message(status, age_seconds=121)

    response = client.get("/readyz/")

    assert response.status_code == 503
    assert _failing(response) == ["replies"]


def test_an_answered_or_young_customer_message_keeps_the_app_ready(client, live_worker, settings):
    settings.READY_REPLY_SECONDS = 120
    _customer_message(Message.Status.HANDLED, age_seconds=3600)
    _customer_message(Message.Status.RECEIVED, age_seconds=30)

    assert client.get("/readyz/").status_code == 200


def test_readyz_names_the_broker_when_redis_does_not_answer(client, live_worker, settings):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"

    response = client.get("/readyz/")

    assert response.status_code == 503
    assert _failing(response) == ["broker"]
    assert _checks(response)["broker"]["detail"].startswith("unreachable")


# The real /readyz/ in a process of its own, configured by the environment as in production.
_READYZ_IN_A_PROCESS = """
import json, time
import django
django.setup()
from django.test import Client
client = Client()
client.get("/healthz/")  # the URLs and views loaded, as in a process that has served before
started = time.monotonic()
response = client.get("/readyz/")
print(json.dumps({"status": response.status_code, "seconds": time.monotonic() - started,
                  "failing": [check["name"] for check in response.json()["checks"] if not check["ok"]]}))
"""


@pytest.mark.slow
def test_readyz_answers_503_in_seconds_when_postgresql_and_redis_do_not_answer():
    # A listening socket that never accepts: the connection is made (or waits in the backlog)
    # and no server ever speaks, like a blackholed address.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(0)
        port = silent.getsockname()[1]
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "whatsbot_project.settings",
            "DATABASE_URL": f"postgres://whatsbot@127.0.0.1:{port}/whatsbot",
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0",
        }
        result = subprocess.run(
            [sys.executable, "-c", _READYZ_IN_A_PROCESS],
            cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.splitlines()[-1])
    assert answer["status"] == 503
    assert {"database", "broker"} <= set(answer["failing"])
    assert answer["seconds"] < 4, answer  # 2 s for PostgreSQL, 1 s for Redis


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the lock is held by another connection, committed rows
def test_readyz_gives_up_on_a_query_that_waits_on_a_lock(client, live_worker):
    if connections["default"].vendor != "postgresql":
        pytest.skip("statement timeouts are PostgreSQL's (DATABASE_URL)")
    holder = connections.create_connection("default")
    try:
        holder.set_autocommit(False)
        with holder.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {WorkerHeartbeat._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        response = client.get("/readyz/")
        elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()

    assert response.status_code == 503
    assert "database" in _failing(response)
    assert elapsed < 4


def test_other_requests_get_a_request_id_and_keep_a_plausible_one_from_the_proxy(client):
    fresh = client.get("/api/conversations/")
    kept = client.get("/api/conversations/", HTTP_X_REQUEST_ID="proxy-4f2a9c1e")
    replaced = client.get("/api/conversations/", HTTP_X_REQUEST_ID="bad id\nwith a line break")

    assert len(fresh["X-Request-ID"]) == 32
    assert kept["X-Request-ID"] == "proxy-4f2a9c1e"
    assert replaced["X-Request-ID"] not in ("bad id\nwith a line break", "")


def test_the_image_and_compose_health_checks_call_healthz_and_readyz():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    dockerfile = (root / "Dockerfile").read_text()
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())

    [healthcheck] = [line for line in dockerfile.splitlines() if line.startswith("HEALTHCHECK")]
    assert "http://127.0.0.1:8000/healthz/" in healthcheck
    assert "http://127.0.0.1:8000/readyz/" in " ".join(compose["services"]["web"]["healthcheck"]["test"])
