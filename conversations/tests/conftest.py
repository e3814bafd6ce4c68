"""Fixtures some of the core tests share (those of every app's tests are in fakes.py)."""

from collections.abc import Iterator
from contextlib import ExitStack
from unittest.mock import patch

import pytest
from celery import current_app

from conversations.dispatch import PROCESS_INBOUND, RECORD_INBOUND


@pytest.fixture
def no_worker() -> Iterator[None]:
    """Nothing is enqueued anywhere: the test records what the webhook accepted itself."""
    with ExitStack() as stack:
        for name in (RECORD_INBOUND, PROCESS_INBOUND):
            stack.enter_context(patch.object(current_app.tasks[name], "apply_async"))
        yield
