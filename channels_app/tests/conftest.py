"""The back-office tests use the same HTTP-boundary fakes and staff users as the core tests
(`conversations.tests.fakes`); the browser fixtures come from `browser_support`. Both are
registered as plugins in the root conftest.py."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from conversations import notify


@pytest.fixture
def prompt_live_sockets(monkeypatch):
    """A live-inbox socket waits PRESENCE_CHECK_SECONDS (0.5 s) before it is accepted, for the
    processes that remembered "nobody watching" to look again. One process here, which forgets
    it when the socket marks the inbox watched: a shorter wait (the same constant, so the
    rule holds) spares the socket tests half a second a socket."""
    monkeypatch.setattr(notify, "PRESENCE_CHECK_SECONDS", 0.02)


@pytest.fixture
def empty_channel_layer():
    """No group members left over from an earlier test. Only the in-memory layer needs it: on
    Redis, groups of closed sockets just expire (and its pools belong to other event loops)."""
    layer = get_channel_layer()
    is_in_memory = isinstance(layer, InMemoryChannelLayer)
    if is_in_memory:
        async_to_sync(layer.flush)()
    yield layer
    if is_in_memory:
        async_to_sync(layer.flush)()


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client
