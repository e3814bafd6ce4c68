from __future__ import annotations

import pytest
from django.test import Client

from integrations.webhooks import forget_subscriptions


@pytest.fixture
def staff_client(staff_user):
    browser = Client()
    browser.force_login(staff_user)
    return browser


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Throttle history lives in the cache, and token ids come again after a rollback."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def fresh_subscriptions():
    """Each test's endpoints are read at its first event (not another test's, cached)."""
    forget_subscriptions()
    yield
    forget_subscriptions()
