"""The live inbox websocket through the real ASGI stack (origin check, session auth, groups)."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from conversations.models import Conversation, Message
from conversations.tests.helpers import meta_body, meta_text, post_meta

# Real commits: the consumer reads through channels' database_sync_to_async, which closes old
# connections around every call.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("empty_channel_layer", "prompt_live_sockets"),
]


# AllowedHostsOriginValidator reads ALLOWED_HOSTS when asgi.py is imported: the defaults.
def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def open_socket(cookie: bytes | None = None, origin: bytes = b"http://localhost"):
    headers = [(b"origin", origin)]
    if cookie:
        headers.append((b"cookie", cookie))
    # Imported here, not at collection: the HTTP middleware reads its settings when asgi.py loads.
    from whatsbot_project.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/live/", headers=headers)
    connected, code = await communicator.connect(timeout=10)
    return communicator, connected, code


async def next_event(communicator, event_type: str, timeout: float = 15) -> dict:
    """The next event of `event_type`, skipping the others the same action caused."""
    async with asyncio.timeout(timeout):
        while True:
            event = await communicator.receive_json_from(timeout=timeout)
            if event["type"] == event_type:
                return event


def test_the_websocket_refuses_anonymous_visitors():
    async def scenario():
        communicator, connected, _ = await open_socket()
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False


def test_the_websocket_refuses_users_who_are_not_staff(django_user_model):
    customer = django_user_model.objects.create_user("mallory", password="mallory-password-1")
    cookie = session_cookie(customer)

    async def scenario():
        communicator, connected, _ = await open_socket(cookie)
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False


def test_the_websocket_refuses_a_page_from_another_origin(staff_user):
    cookie = session_cookie(staff_user)

    async def scenario():
        results = []
        for origin in (b"https://evil.example", b"http://localhost"):
            communicator, connected, _ = await open_socket(cookie, origin=origin)
            results.append(connected)
            await communicator.disconnect()
        return results

    assert async_to_sync(scenario)() == [False, True]


def test_a_staff_socket_receives_new_inbound_messages_in_the_list_and_the_open_conversation(
    client, graph_ok, fake_openai, staff_user
):
    cookie = session_cookie(staff_user)

    async def scenario():
        communicator, connected, _ = await open_socket(cookie)
        assert connected
        await sync_to_async(post_meta)(client, meta_body("text"))
        row = await next_event(communicator, "conversation")
        conversation_id = row["conversation"]["id"]
        await communicator.send_json_to({"action": "open", "conversation_id": conversation_id})
        await next_event(communicator, "opened")
        await sync_to_async(post_meta)(client, meta_text("<b>Do you deliver?</b>", "wamid.deliver"))
        new_message = await next_event(communicator, "message")
        await communicator.disconnect()
        return row, new_message

    row, new_message = async_to_sync(scenario)()

    assert row["conversation"]["profile"]["name"] == "Ada Lovelace"
    assert row["conversation"]["contact"]["name"] == "Ada Lovelace"
    assert row["conversation"]["contact"]["channels"] == [{"channel": "meta_whatsapp", "label": "WhatsApp (Meta)"}]
    assert row["conversation"]["last_message_preview"] == "Hi! What are your opening hours?"
    assert row["conversation"]["unread_count"] == 1
    assert new_message["message"]["text"] == "<b>Do you deliver?</b>"
    assert (new_message["message"]["direction"], new_message["message"]["author"]) == ("in", "customer")


def test_a_staff_socket_receives_delivery_status_changes(client, graph_ok, fake_openai, staff_user):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    reply = Message.objects.get(author=Message.Author.BOT)
    status = json.loads(meta_body("status_delivered"))
    status["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = reply.provider_message_id
    status_body = json.dumps(status).encode()
    cookie = session_cookie(staff_user)

    async def scenario():
        communicator, _, _ = await open_socket(cookie)
        await communicator.send_json_to({"action": "open", "conversation_id": conversation.pk})
        await next_event(communicator, "opened")
        response = await sync_to_async(post_meta)(client, status_body)
        assert response.status_code == 200
        event = await next_event(communicator, "status")
        row = await next_event(communicator, "conversation")
        await communicator.disconnect()
        return event, row

    event, row = async_to_sync(scenario)()

    assert (event["message"]["id"], event["message"]["status"]) == (reply.pk, "delivered")
    assert row["conversation"]["delivery_status"] == "delivered"


def test_a_staff_socket_receives_contact_changes(client, graph_ok, fake_openai, staff_user):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.select_related("profile").get()
    cookie = session_cookie(staff_user)
    client.force_login(staff_user)

    async def scenario():
        communicator, _, _ = await open_socket(cookie)
        await communicator.send_json_to({"action": "open", "conversation_id": conversation.pk})
        await next_event(communicator, "opened")
        response = await sync_to_async(client.patch)(
            f"/api/contacts/{conversation.profile.contact_id}/",
            data={"company": "Analytical Engines Ltd"},
            content_type="application/json",
        )
        assert response.status_code == 200
        event = await next_event(communicator, "contact")
        await communicator.disconnect()
        return event

    event = async_to_sync(scenario)()

    assert event["contact"]["company"] == "Analytical Engines Ltd"
    assert event["contact"]["id"] == conversation.profile.contact_id
    assert [identity["id"] for identity in event["contact"]["identities"]] == [conversation.profile_id]


def test_a_socket_only_gets_messages_of_the_conversation_it_has_open(client, graph_ok, fake_openai, staff_user):
    post_meta(client, meta_body("text"))
    post_meta(client, meta_text("Other customer", "wamid.other").replace(b"0000000001", b"0000000002"))
    first, second = Conversation.objects.order_by("id")
    cookie = session_cookie(staff_user)

    async def scenario():
        communicator, _, _ = await open_socket(cookie)
        await communicator.send_json_to({"action": "open", "conversation_id": first.pk})
        await next_event(communicator, "opened")
        await sync_to_async(post_meta)(
            client, meta_text("For the second", "wamid.second").replace(b"0000000001", b"0000000002")
        )
        events = []
        while not await communicator.receive_nothing(timeout=0.5):
            events.append(await communicator.receive_json_from())
        await communicator.disconnect()
        return events

    events = async_to_sync(scenario)()

    assert [e["type"] for e in events if e["type"] in ("message", "status")] == []
    assert {e["conversation"]["id"] for e in events if e["type"] == "conversation"} == {second.pk}


def test_a_staff_member_whose_access_is_revoked_is_disconnected(staff_user):
    cookie = session_cookie(staff_user)

    async def scenario():
        communicator, connected, _ = await open_socket(cookie)
        assert connected
        staff_user.is_staff = False
        await sync_to_async(staff_user.save)()
        closed = await communicator.receive_output(timeout=15)
        await communicator.disconnect()
        return closed

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": 4403}


def test_a_new_permission_is_sent_to_the_open_page_at_once(staff_user):
    from django.contrib.auth.models import Permission

    cookie = session_cookie(staff_user)
    assign = Permission.objects.get(content_type__app_label="conversations", codename="assign")

    async def scenario():
        communicator, connected, _ = await open_socket(cookie)
        assert connected
        await sync_to_async(staff_user.user_permissions.add)(assign)
        granted = await next_event(communicator, "permissions")
        await sync_to_async(staff_user.user_permissions.remove)(assign)
        revoked = await next_event(communicator, "permissions")
        await communicator.disconnect()
        return granted, revoked

    granted, revoked = async_to_sync(scenario)()

    assert granted["actions"]["assign"] is True
    assert granted["actions"]["write"] is True  # the Agent's role still holds the rest
    assert revoked["actions"]["assign"] is False


def test_a_periodic_check_disconnects_staff_revoked_without_a_save_signal(staff_user, settings, django_user_model):
    settings.LIVE_ACCESS_RECHECK_SECONDS = 0.1
    cookie = session_cookie(staff_user)

    async def scenario():
        communicator, connected, _ = await open_socket(cookie)
        assert connected
        await sync_to_async(django_user_model.objects.filter(pk=staff_user.pk).update)(is_active=False)
        closed = await communicator.receive_output(timeout=15)
        await communicator.disconnect()
        return closed

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": 4403}


def test_an_erased_persons_conversations_leave_every_open_inbox(client, graph_ok, fake_openai, staff_user):
    from gdpr.erasure import erase_subject
    from gdpr.subjects import find_subject

    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    cookie = session_cookie(staff_user)

    async def scenario():
        communicator, _, _ = await open_socket(cookie)
        await communicator.send_json_to({"action": "open", "conversation_id": conversation.pk})
        await next_event(communicator, "opened")
        await sync_to_async(lambda: erase_subject(subject=find_subject(identifier="+15551234567")))()
        event = await next_event(communicator, "conversation_removed")
        await communicator.disconnect()
        return event

    event = async_to_sync(scenario)()

    assert event["conversation_ids"] == [conversation.pk]


def test_a_row_event_carries_each_agents_own_unread_count_and_private_notes_reach_only_staff_pages(
    client, graph_ok, fake_openai, staff_user, other_staff
):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    alice = Client()
    alice.force_login(staff_user)
    last = Message.objects.order_by("id").last().pk
    alice.post(
        f"/api/conversations/{conversation.pk}/read/", {"up_to_message_id": last}, content_type="application/json"
    )
    cookie = session_cookie(other_staff)

    async def scenario():
        communicator, connected, _ = await open_socket(cookie)
        assert connected
        await communicator.send_json_to({"action": "open", "conversation_id": conversation.pk})
        await next_event(communicator, "opened")
        await sync_to_async(post_meta)(client, meta_text("Still there?", "wamid.still"))
        row = await next_event(communicator, "conversation")
        await sync_to_async(alice.post)(
            f"/api/conversations/{conversation.pk}/notes/", {"text": "VIP"}, content_type="application/json"
        )
        note = await next_event(communicator, "message")
        while note["message"]["author"] != "private_note":
            note = await next_event(communicator, "message")
        await communicator.disconnect()
        return row, note

    row, note = async_to_sync(scenario)()

    # Alice read the first message; Bob never opened it: he counts from the team marker.
    assert row["conversation"]["unread_by"] == {str(staff_user.pk): 1}
    assert row["conversation"]["unread_count"] == 2
    assert (note["message"]["text"], note["message"]["staff_name"]) == ("VIP", "Alice Staff")
