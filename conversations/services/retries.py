from __future__ import annotations

import random

from django.conf import settings


class RetryLater(Exception):
    """Raised by a service when its task should run again after `countdown` seconds."""

    def __init__(self, countdown: float) -> None:
        super().__init__(f"retry in {countdown:.1f}s")
        self.countdown = countdown


def backoff_delay(*, attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before attempt `attempt + 1`: the provider's Retry-After when it gave
    one, else exponential (base * 2**(attempt-1)) with jitter, both capped."""
    cap = settings.RETRY_BACKOFF_MAX_SECONDS
    if retry_after is not None:
        return min(retry_after, cap)
    delay = settings.RETRY_BACKOFF_BASE_SECONDS * 2 ** max(attempt - 1, 0)
    return min(delay * random.uniform(1.0, 1.25), cap)
