"""Every role against every live-inbox websocket message type, in both directions, through the
real ASGI stack; and a permission revoked while the socket is open stops its next message."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.roles import AGENT, SUPERVISOR
from accounts.tests.helpers import EVERY_ROLE, log_in, user_with
from channels_app import consumers
from channels_app.live import staff_group

# Real commits: the consumer reads through channels' database_sync_to_async in other threads.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("empty_channel_layer", "prompt_live_sockets"),
]

INBOX = {AGENT, SUPERVISOR}
# Messages a page sends → roles allowed; events sent to the page → roles that receive them.
ACTIONS = {"open": INBOX}
EVENTS = {"conversation": INBOX, "conversation_removed": INBOX, "message": INBOX, "status": INBOX, "contact": INBOX}


def session_cookie(user, *, second_factor: bool = True) -> bytes:
    client = log_in(Client(), user, second_factor=second_factor)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def open_socket(cookie: bytes):
    from whatsbot_project.asgi import application

    communicator = WebsocketCommunicator(
        application, "/ws/live/", headers=[(b"origin", b"http://localhost"), (b"cookie", cookie)]
    )
    connected, _ = await communicator.connect(timeout=10)
    return communicator, connected


async def send_event(user_id: int, event_type: str) -> None:
    await get_channel_layer().group_send(
        staff_group(user_id), {"type": "live.event", "event": {"type": event_type, "probe": True}}
    )


def test_every_socket_message_type_is_in_the_tables():
    assert set(consumers.ACTIONS) == set(ACTIONS)
    assert set(consumers.EVENT_PERMISSIONS) == set(EVENTS)


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_each_role_connects_sends_and_receives_exactly_what_its_permissions_allow(role):
    user = user_with(role)
    cookie = session_cookie(user)

    async def scenario():
        communicator, connected = await open_socket(cookie)
        if not connected:
            await communicator.disconnect(timeout=10)
            return connected, {}, {}
        answers = {}
        for action in ACTIONS:
            await communicator.send_json_to({"action": action, "conversation_id": 1})
            answers[action] = (await communicator.receive_json_from(timeout=15))["type"]
        received = {}
        for event_type, roles in EVENTS.items():
            await send_event(user.pk, event_type)
            if role in roles:  # a busy machine may take seconds: wait for it
                received[event_type] = (await communicator.receive_json_from(timeout=15))["type"] == event_type
            else:  # absence can only be waited for; one arriving later fails the next receive
                received[event_type] = not await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return connected, answers, received

    connected, answers, received = async_to_sync(scenario)()

    assert connected is (role in INBOX)
    if connected:
        assert answers == {action: "opened" if role in roles else "forbidden" for action, roles in ACTIONS.items()}
        assert received == {event: role in roles for event, roles in EVENTS.items()}


def test_a_supervisor_without_the_second_factor_is_refused_a_socket():
    cookie = session_cookie(user_with(SUPERVISOR), second_factor=False)

    async def scenario():
        communicator, connected = await open_socket(cookie)
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False


def test_a_role_removed_while_the_inbox_is_open_closes_the_socket_at_its_next_message():
    agent = user_with(AGENT)
    cookie = session_cookie(agent)

    async def scenario():
        communicator, connected = await open_socket(cookie)
        assert connected
        await communicator.send_json_to({"action": "open", "conversation_id": 1})
        assert (await communicator.receive_json_from(timeout=15))["type"] == "opened"
        await sync_to_async(agent.groups.clear)()
        await communicator.send_json_to({"action": "open", "conversation_id": 2})
        closed = await communicator.receive_output(timeout=15)
        await communicator.disconnect()
        return closed

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": consumers.CLOSE_FORBIDDEN}


def test_an_event_permission_revoked_while_the_inbox_is_open_stops_its_events(monkeypatch):
    monkeypatch.setattr(consumers, "EVENT_PERMISSION_TTL_SECONDS", 0.0)
    agent = user_with(AGENT)
    cookie = session_cookie(agent)

    async def scenario():
        communicator, connected = await open_socket(cookie)
        assert connected
        await send_event(agent.pk, "message")
        first = await communicator.receive_json_from(timeout=15)
        await sync_to_async(agent.groups.clear)()
        await asyncio.sleep(0.01)
        await send_event(agent.pk, "message")
        nothing = await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()
        return first, nothing

    first, nothing = async_to_sync(scenario)()

    assert first == {"type": "message", "probe": True}
    assert nothing is True


def test_an_inbox_left_unattended_past_the_idle_timeout_closes_at_its_next_check(settings):
    settings.STAFF_SESSION_IDLE_MINUTES = 30
    client = log_in(Client(), user_with(AGENT))
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    def leave_unattended() -> None:
        session = client.session
        session["staff_last_seen"] = int(time.time()) - 31 * 60
        session.save()

    async def scenario():
        communicator, connected = await open_socket(cookie)
        assert connected
        await sync_to_async(leave_unattended)()
        await communicator.send_json_to({"action": "open", "conversation_id": 1})
        closed = await communicator.receive_output(timeout=15)
        await communicator.disconnect()
        return closed

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": consumers.CLOSE_FORBIDDEN}
