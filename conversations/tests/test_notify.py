"""The live inbox's presence check (notify.is_watched) as a busy worker meets it."""

import threading
import time

from conversations import notify


class SlowCache:
    """A cache whose reads take a while, as a round trip to Redis does; counts them."""

    def __init__(self) -> None:
        self.reads = 0

    def get(self, key):
        self.reads += 1
        time.sleep(0.05)
        return True


def test_callers_due_at_once_share_one_presence_read(monkeypatch):
    cache = SlowCache()
    monkeypatch.setattr(notify, "cache", cache)
    monkeypatch.setattr(notify._presence, "checked_at", -float("inf"))
    answers = []
    callers = [threading.Thread(target=lambda: answers.append(notify.is_watched())) for _ in range(20)]

    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()

    assert answers == [True] * 20
    assert cache.reads == 1  # not one cache connection per waiting greenlet
    assert notify.is_watched() and cache.reads == 1  # remembered for PRESENCE_CHECK_SECONDS
