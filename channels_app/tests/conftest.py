"""The back-office tests use the same HTTP-boundary fakes and staff users as the core tests."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from channels_app.tests.browser_support import browser_page, daphne_server, live_url  # noqa: F401
from conversations.tests.conftest import *  # noqa: F403


@pytest.fixture(autouse=True)
def plain_static_files(settings):
    # The manifest storage needs `collectstatic`; pages under test link the source files.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


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
