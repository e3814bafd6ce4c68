"""A flood from one contact through real processes (daphne, a Celery worker on Redis, the shared
PostgreSQL test database): at most BUDGET_REPLIES_PER_MINUTE model calls, exactly one limit
notice, and another contact answered normally meanwhile."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests

from conversations.models import Message
from conversations.services.budgets import LIMIT_NOTICE

from .helpers import meta_signature, meta_text
from .test_real_worker import (  # noqa: F401  (fixtures: the servers this test needs)
    child_env,
    fake_upstreams,
    free_port,
    needs_servers,
    processes,
    start_redis,
    start_web,
    start_worker,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.redis]

ALICE, BOB = "15550000001", "15550000002"
FLOOD = 200
PER_MINUTE = 3


def wait_for_a_fresh_hour() -> None:
    """The notice counts per clock hour: not in its last minute (the reply rate is a sliding
    minute, whatever the clock says)."""
    now = datetime.now(UTC)
    if now.minute == 59:
        time.sleep(60 - now.second + 1)


def post(port: int, text: str, wamid: str, wa_id: str) -> int:
    body = meta_text(text, wamid, wa_id=wa_id, user_id=f"US.{wa_id}")
    response = requests.post(
        f"http://127.0.0.1:{port}/webhooks/meta/",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)},
        timeout=10,
    )
    return response.status_code


def settled(expected_inbound: int) -> bool:
    inbound = Message.objects.filter(direction=Message.Direction.INBOUND)
    waiting = inbound.filter(status__in=[Message.Status.RECEIVED, Message.Status.PROCESSING]).exists()
    unsent = Message.objects.filter(author=Message.Author.BOT, status__in=["pending", "sending"]).exists()
    return inbound.count() == expected_inbound and not waiting and not unsent


def test_a_flood_from_one_contact_costs_at_most_the_limit_and_one_notice(processes, fake_upstreams, fake_openai):  # noqa: F811
    httpserver, _ = fake_upstreams
    redis_port = free_port()
    start_redis(processes, redis_port)
    env = child_env(
        redis_port,
        httpserver,
        notify=False,
        BUDGET_REPLIES_PER_MINUTE=str(PER_MINUTE),
        # Every message is answered on its own: no burst merges the flood into fewer replies.
        BURST_WINDOW_SECONDS="0",
        BURST_MAX_WAIT_SECONDS="0",
    )
    start_worker(processes, env)
    port = start_web(processes, env)
    wait_for_a_fresh_hour()

    messages = [(f"flood {n}", f"wamid.FLOOD{n}", ALICE) for n in range(FLOOD)]
    for n in range(3):  # Bob writes in the middle of the flood
        messages.insert(50 * (n + 1), (f"bob {n}", f"wamid.BOB{n}", BOB))
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda m: post(port, *m), messages))
    assert statuses == [200] * len(messages)

    deadline = time.monotonic() + 120
    while not settled(len(messages)):
        if time.monotonic() > deadline:
            pytest.fail(f"the flood did not settle\n{processes.logs()}")
        time.sleep(0.5)

    alice_calls = [r for r in fake_openai.requests if r["input"][-1]["content"].startswith("flood")]
    bob_calls = [r for r in fake_openai.requests if r["input"][-1]["content"].startswith("bob")]
    assert len(alice_calls) <= PER_MINUTE
    assert len(bob_calls) == 3
    replies = Message.objects.filter(author=Message.Author.BOT)
    alice = list(replies.filter(conversation__profile__phone_number__endswith=ALICE).values_list("text", flat=True))
    bob = list(replies.filter(conversation__profile__phone_number__endswith=BOB).values_list("text", flat=True))
    assert alice.count(LIMIT_NOTICE) == 1
    assert len(alice) == len(alice_calls) + 1
    assert bob == ["From the worker."] * 3
