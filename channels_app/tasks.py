"""Celery tasks of the simulator: thin, one call each."""

from __future__ import annotations

import requests
from celery import shared_task

from conversations.providers import simulator


# The webhook answers in milliseconds; retries only cover a server that is still starting.
@shared_task(autoretry_for=(requests.ConnectionError,), retry_backoff=1, max_retries=5)
def deliver_simulated_webhook(body: str) -> int:
    return simulator.post_to_webhook(body.encode())
