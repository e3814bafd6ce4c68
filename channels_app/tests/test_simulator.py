import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from accounts.roles import ADMINISTRATOR, AGENT, DATA_OFFICER, SUPERVISOR
from accounts.tests.helpers import EVERY_ROLE, NO_ROLE, log_in, user_with
from conversations.models import Message, ProcessedMessage
from conversations.providers import simulator
from conversations.tests.fakes import GRAPH_MESSAGES
from conversations.tests.helpers import meta_body, meta_signature, post_meta
from whatsbot_project.asgi import application

# Real commits: most tests go through a live server (the simulator POSTs to our webhook) or the
# phone's websocket consumer (database_sync_to_async closes old connections).
pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMER = {"customer_id": "SIM.abcdef123456", "phone_number": "+15550009999", "name": "Sim Customer"}


@pytest.fixture
def simulator_on(settings, live_server, fake_providers):
    fake_providers.add_passthru(live_server.url)  # the simulator really POSTs to our webhook
    settings.DEBUG = settings.SIMULATOR_ENABLED = True
    settings.SIMULATOR_WEBHOOK_URL = f"{live_server.url}/webhooks/meta/"
    return settings


def simulated_text(client, text: str = "Do you deliver on Sundays?"):
    return client.post(
        "/simulator/api/messages/", {**CUSTOMER, "type": "text", "text": text}, content_type="application/json"
    )


async def open_phone(customer_id: str = CUSTOMER["customer_id"]) -> WebsocketCommunicator:
    phone = WebsocketCommunicator(
        application, f"/ws/simulator/{customer_id}/", headers=[(b"origin", b"http://localhost")]
    )
    connected, _ = await phone.connect(timeout=10)
    assert connected
    return phone


def test_a_simulated_text_goes_through_the_signed_webhook_and_the_reply_comes_back_to_the_phone(
    client, simulator_on, fake_openai, graph_ok
):
    fake_openai.answer("Yes, until noon.")

    async def scenario():
        phone = await open_phone()
        from asgiref.sync import sync_to_async

        response = await sync_to_async(simulated_text)(client)
        read = await phone.receive_json_from(timeout=10)
        typing = await phone.receive_json_from(timeout=10)
        reply = await phone.receive_json_from(timeout=10)
        await phone.disconnect()
        return response, (read, typing, reply)

    response, (read, typing, reply) = async_to_sync(scenario)()

    assert response.status_code == 202
    assert read == {"type": "receipt", "id": response.json()["id"], "status": "read"}
    assert typing == {"type": "typing"}  # "typing…" while the bot works on the answer, as WhatsApp shows
    assert reply["type"] == "message"
    assert reply["text"] == "Yes, until noon."
    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    assert (inbound.provider_message_id, inbound.text) == (response.json()["id"], "Do you deliver on Sundays?")
    assert inbound.conversation.business_address == simulator.SIMULATOR_NUMBER_ID
    assert graph_ok.sent(GRAPH_MESSAGES) == []  # answered by the simulator, though Meta is configured
    assert Message.objects.get(author=Message.Author.BOT).status == Message.Status.SENT


def test_simulator_bodies_are_signed_and_deduplicated_like_real_ones(client, settings, graph_ok):
    body = simulator.build_message_body(
        message_id="wamid.SIM.fixed", customer_id="SIM.abcdef123456", phone_number="+15550009999",
        name="Sim", kind="text", content={"body": "hello"},
    )  # fmt: skip

    forged = client.post("/webhooks/meta/", body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256="sha256=0")
    first = client.post(
        "/webhooks/meta/", body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=meta_signature(body)
    )
    again = client.post(
        "/webhooks/meta/", body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=meta_signature(body)
    )

    assert (forged.status_code, first.status_code, again.status_code) == (403, 200, 200)
    assert ProcessedMessage.objects.filter(provider_message_id=ProcessedMessage.key_for("wamid.SIM.fixed")).count() == 1
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1


def test_read_receipts_from_the_phone_reach_the_reply_as_status_webhooks(client, simulator_on, fake_openai):
    async def scenario():
        phone = await open_phone()
        from asgiref.sync import sync_to_async

        await sync_to_async(simulated_text)(client)
        await phone.receive_json_from(timeout=10)  # the blue ticks on the customer's message
        await phone.receive_json_from(timeout=10)  # "typing…"
        reply = await phone.receive_json_from(timeout=10)
        await phone.send_json_to(
            {"type": "receipt", "id": reply["id"], "client_ref": reply["client_ref"], "status": "read"}
        )
        await phone.disconnect()

    async_to_sync(scenario)()

    assert Message.objects.get(author=Message.Author.BOT).status == Message.Status.READ


def test_the_phone_cannot_send_receipts_for_real_customers_messages(client, simulator_on, fake_openai, graph_ok):
    post_meta(client, meta_body("text"))  # a real (non-simulated) Meta conversation
    reply = Message.objects.get(author=Message.Author.BOT, conversation__business_address="110000000000001")

    async def scenario():
        phone = await open_phone()
        await phone.send_json_to({"type": "receipt", "id": reply.provider_message_id, "status": "read"})
        await phone.disconnect()

    async_to_sync(scenario)()

    reply.refresh_from_db()
    assert reply.status == Message.Status.SENT


def test_the_simulator_is_off_unless_enabled_even_for_its_role(client, settings):
    settings.DEBUG, settings.SIMULATOR_ENABLED = True, False
    log_in(client, user_with(SUPERVISOR))

    assert client.get("/simulator/").status_code == 404
    assert invalid_location(client).status_code == 404
    assert async_to_sync(connect_phone)(client) == (False, 4403)
    settings.DEBUG = False
    assert client.get("/simulator/").status_code == 404


# In production (DEBUG off, SIMULATOR_ENABLED set), by role: may use the simulator.
SIMULATOR_ROLES = {AGENT: False, SUPERVISOR: True, DATA_OFFICER: False, ADMINISTRATOR: False, NO_ROLE: False}


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_in_production_the_simulator_is_for_supervisors_only(client, settings, role):
    settings.DEBUG, settings.SIMULATOR_ENABLED = False, True
    log_in(client, user_with(role))
    allowed = SIMULATOR_ROLES[role]

    page = client.get("/simulator/")
    api = invalid_location(client)  # 400 once past the permission: nothing is sent

    assert page.status_code == (200 if allowed else 404)
    assert api.status_code == (400 if allowed else 404)
    assert async_to_sync(connect_phone)(client) == ((True, None) if allowed else (False, 4403))


def test_in_production_an_anonymous_visitor_is_sent_to_log_in(client, settings):
    settings.DEBUG, settings.SIMULATOR_ENABLED = False, True

    page = client.get("/simulator/")

    assert page.status_code == 302 and page["Location"].startswith("/admin/login/")
    assert invalid_location(client).status_code == 404
    assert async_to_sync(connect_phone)(client) == (False, 4403)


def invalid_location(client):
    return client.post("/simulator/api/messages/", {**CUSTOMER, "type": "location"}, content_type="application/json")


async def connect_phone(client) -> tuple[bool, int | None]:
    """Open the phone's websocket with the client's session; (connected, close code)."""
    session = client.cookies.get("sessionid")
    headers = [(b"origin", b"http://localhost")]
    if session is not None:
        headers.append((b"cookie", f"sessionid={session.value}".encode()))
    phone = WebsocketCommunicator(application, f"/ws/simulator/{CUSTOMER['customer_id']}/", headers=headers)
    connected, code = await phone.connect(timeout=10)
    await phone.disconnect(timeout=10)  # refused too: a consumer left running is cancelled at loop close
    return (True, None) if connected else (connected, code)


def test_invalid_simulated_input_gets_a_clear_error(client, settings):
    settings.DEBUG = settings.SIMULATOR_ENABLED = True

    response = client.post(
        "/simulator/api/messages/", {**CUSTOMER, "type": "location"}, content_type="application/json"
    )

    assert response.status_code == 400
    assert set(response.json()) == {"latitude", "longitude"}
    assert json.loads(response.content)["latitude"] == ["This field is required."]


def test_a_simulated_voice_note_is_transcribed_and_answered(client, simulator_on, fake_openai):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fake_openai.default_transcript = "I would like two croissants"
    voice = SimpleUploadedFile("note.ogg", b"OggS\x00simulated-voice", content_type="audio/ogg")

    response = client.post("/simulator/api/messages/", {**CUSTOMER, "type": "voice", "file": voice})

    assert response.status_code == 202
    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    assert inbound.kind == Message.Kind.AUDIO
    assert inbound.attachments.get().transcript == "I would like two croissants"
    assert inbound.attachments.get().file.read() == b"OggS\x00simulated-voice"
    assert fake_openai.requests[-1]["input"][-1]["content"] == "I would like two croissants"
    assert "sim-media" not in json.dumps(fake_openai.requests)


def test_a_simulated_photo_reaches_the_model_as_pixels(client, simulator_on, fake_openai):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buffer, "PNG")
    photo = SimpleUploadedFile("shelf.png", buffer.getvalue(), content_type="image/png")

    client.post("/simulator/api/messages/", {**CUSTOMER, "type": "photo", "file": photo, "text": "Which one?"})

    content = fake_openai.requests[-1]["input"][-1]["content"]
    assert {"type": "input_text", "text": "Which one?"} in content
    assert any(
        part["type"] == "input_image" and part["image_url"].startswith("data:image/jpeg;base64,") for part in content
    )


def test_a_simulated_upload_of_the_wrong_kind_is_refused(client, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.DEBUG = settings.SIMULATOR_ENABLED = True
    script = SimpleUploadedFile("note.exe", b"MZ", content_type="application/octet-stream")

    response = client.post("/simulator/api/messages/", {**CUSTOMER, "type": "voice", "file": script})

    assert response.status_code == 400
    assert response.json()["file"][0].startswith("Send an audio file: .ogg")


def test_a_template_to_a_simulated_customer_goes_to_the_phone_not_to_meta(
    client, simulator_on, fake_openai, graph_ok, staff_user
):
    from conversations.services.staff import send_template_message, take_over_conversation

    simulated_text(client)
    conversation = Message.objects.get(direction=Message.Direction.INBOUND).conversation
    take_over_conversation(conversation_id=conversation.pk, user=staff_user)

    async def scenario():
        phone = await open_phone()
        from asgiref.sync import sync_to_async

        await sync_to_async(send_template_message)(
            conversation_id=conversation.pk, user=staff_user, name="order_update", language="en", parameters=["1042"]
        )
        event = await phone.receive_json_from(timeout=10)
        await phone.disconnect()
        return event

    event = async_to_sync(scenario)()

    assert event["text"] == "[template order_update (en): 1042]"
    assert graph_ok.sent(GRAPH_MESSAGES) == []
    assert Message.objects.get(author=Message.Author.STAFF).status == Message.Status.SENT
