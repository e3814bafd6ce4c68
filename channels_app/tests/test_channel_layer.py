"""The Redis channel layer as production configures it (settings.CHANNEL_LAYERS)."""

import asyncio
import os

import pytest
from channels.layers import channel_layers

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL: the Redis channel layer"),
]


def test_a_socket_idle_longer_than_a_blocking_read_still_receives():
    """channels_redis waits in Redis (BZPOPMIN) up to 5 s per read; with redis-py 8's default 5 s
    socket timeout an idle live inbox failed with "Timeout reading from …" instead of waiting on."""
    layer = channel_layers.make_backend("default")  # its own, not one bound to another test's loop

    async def idle_then_message() -> dict:
        channel = await layer.new_channel()
        receiving = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(layer.brpop_timeout + 1.5)
        assert not receiving.done(), receiving.exception()
        await layer.send(channel, {"type": "inbox.changed"})
        try:
            return await asyncio.wait_for(receiving, timeout=5)
        finally:
            await layer.flush()

    assert asyncio.run(idle_then_message()) == {"type": "inbox.changed"}
