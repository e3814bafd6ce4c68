import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from channels_app.webchat import VISITOR_COOKIE, read_visitor_id
from conversations.models import Channel, Conversation, Message
from whatsbot_project.asgi import application

# Real commits: the widget's websocket consumer reads through channels' database_sync_to_async,
# which closes old connections around every call.
pytestmark = pytest.mark.django_db(transaction=True)


def visitor_cookie(client) -> str:
    response = client.get("/chat/")
    assert response.status_code == 200
    return response.cookies[VISITOR_COOKIE].value


async def open_widget(cookie: str | None, path: str = "/ws/chat/") -> tuple[WebsocketCommunicator, bool, int]:
    headers = [(b"origin", b"http://localhost")]
    if cookie is not None:
        headers.append((b"cookie", f"{VISITOR_COOKIE}={cookie}".encode()))
    widget = WebsocketCommunicator(application, path, headers=headers)
    # A connect that times out cancels the consumer mid-call, which could hang the test's loop on
    # a busy machine: generous.
    connected, code = await widget.connect(timeout=10)
    return widget, connected, code


async def try_widget(cookie: str | None, path: str = "/ws/chat/") -> tuple[bool, int]:
    """Open the widget's socket and close it again, accepted or not; (connected, close code)."""
    widget, connected, code = await open_widget(cookie, path)
    await widget.disconnect(timeout=10)
    return connected, code


def chat(cookie: str, *messages: dict, replies: int = 0) -> list[dict]:
    async def scenario():
        widget, connected, _ = await open_widget(cookie)
        assert connected
        events = [await widget.receive_json_from(timeout=15)]  # history
        for message in messages:
            await widget.send_json_to(message)
            events.append(await widget.receive_json_from(timeout=15))
        for _ in range(replies):
            events.append(await widget.receive_json_from(timeout=15))
        await widget.disconnect()
        return events

    return async_to_sync(scenario)()


def test_a_visitor_writes_and_gets_the_reply_on_the_widget(client, fake_openai):
    fake_openai.answer("Hi! We ship worldwide.")
    cookie = visitor_cookie(client)

    history, accepted, read, reply = chat(
        cookie, {"type": "message", "id": "client-0001", "text": "Do you ship?"}, replies=2
    )

    assert history == {"type": "history", "messages": []}
    assert accepted == {"type": "accepted", "id": "client-0001"}
    assert read == {"type": "receipt", "id": "client-0001", "status": "read"}
    assert (reply["type"], reply["text"]) == ("message", "Hi! We ship worldwide.")
    conversation = Conversation.objects.get()
    assert conversation.channel == Channel.WEBCHAT
    assert conversation.profile.external_id == read_visitor_id(cookie)
    assert Message.objects.get(author=Message.Author.BOT).status == Message.Status.SENT


def test_a_message_resent_by_the_widget_is_recorded_once(client, fake_openai):
    cookie = visitor_cookie(client)
    message = {"type": "message", "id": "client-0002", "text": "Hello?"}

    chat(cookie, message, replies=2)
    chat(cookie, message)

    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert len(fake_openai.requests) == 1


def test_receipts_move_only_the_visitors_own_replies(client, fake_openai):
    alice, mallory = visitor_cookie(client), visitor_cookie(client.__class__())
    _, _, _, reply = chat(alice, {"type": "message", "id": "client-0003", "text": "Hi"}, replies=2)

    def read_as(cookie):
        async def scenario():
            widget, _, _ = await open_widget(cookie)
            await widget.receive_json_from(timeout=15)
            await widget.send_json_to({"type": "receipt", "id": reply["id"], "status": "read"})
            # The consumer handles its messages in order: the disconnect returns once the receipt
            # was handled (however busy the machine; not a fixed wait).
            await widget.disconnect(timeout=10)

        async_to_sync(scenario)()

    read_as(mallory)
    assert Message.objects.get(author=Message.Author.BOT).status == Message.Status.SENT
    read_as(alice)
    assert Message.objects.get(author=Message.Author.BOT).status == Message.Status.READ


def test_a_forged_cookie_is_refused_and_reads_nothing(client, fake_openai):
    alice = visitor_cookie(client)
    chat(alice, {"type": "message", "id": "client-0004", "text": "my secret order"}, replies=2)
    visitor_id = alice.split(":")[0]
    forged = f"{visitor_id}:not-a-valid-signature"

    connected, code = async_to_sync(try_widget)(forged)

    assert (connected, code) == (False, 4401)


def test_no_cookie_no_websocket():
    connected, code = async_to_sync(try_widget)(None)

    assert (connected, code) == (False, 4401)


def test_the_widget_page_and_websocket_refuse_another_visitors_conversation(client, fake_openai):
    alice = visitor_cookie(client)
    chat(alice, {"type": "message", "id": "client-0005", "text": "private"}, replies=2)
    conversation = Conversation.objects.get()
    other = client.__class__()
    mallory = visitor_cookie(other)

    page = other.get(f"/chat/?conversation={conversation.pk}")
    connected, code = async_to_sync(try_widget)(mallory, f"/ws/chat/{conversation.pk}/")
    own_page = client.get(f"/chat/?conversation={conversation.pk}")

    assert page.status_code == 404
    assert (connected, code) == (False, 4403)
    assert own_page.status_code == 200


def test_the_history_replays_the_visitors_own_conversation(client, fake_openai):
    fake_openai.answer("Noted.")
    alice = visitor_cookie(client)
    chat(alice, {"type": "message", "id": "client-0006", "text": "first"}, replies=2)

    [history] = chat(alice)

    assert [(m["direction"], m["text"]) for m in history["messages"]] == [("in", "first"), ("out", "Noted.")]
    assert history["messages"][0]["id"] == "client-0006"


def test_invalid_widget_messages_get_an_error_and_store_nothing(client):
    cookie = visitor_cookie(client)

    _, error = chat(cookie, {"type": "message", "id": "x", "text": "hi"})

    assert error == {"type": "error", "id": "x", "error": "invalid message"}
    assert not Message.objects.exists()


def test_the_widget_may_be_framed_only_by_allowed_origins(client, settings):
    settings.WEBCHAT_ALLOWED_ORIGINS = ["https://shop.example.com"]

    response = client.get("/chat/")

    assert response["Content-Security-Policy"] == "frame-ancestors 'self' https://shop.example.com"
    assert "X-Frame-Options" not in response


def test_gdpr_export_and_erasure_cover_a_web_chat_visitor(client, fake_openai):
    from gdpr.erasure import erase_subject
    from gdpr.export import build_subject_export
    from gdpr.subjects import find_subject

    cookie = visitor_cookie(client)
    chat(cookie, {"type": "message", "id": "client-0007", "text": "my address is 1 Main St"}, replies=2)
    visitor_id = read_visitor_id(cookie)

    export = build_subject_export(subject=find_subject(identifier=visitor_id))
    [profile] = export["profiles"]
    texts = [m["text"] for c in profile["conversations"] for m in c["messages"]]
    assert "my address is 1 Main St" in texts

    erase_subject(subject=find_subject(identifier=visitor_id), actor_label="dpo")

    assert not Conversation.objects.exists()
    assert not Message.objects.exists()
