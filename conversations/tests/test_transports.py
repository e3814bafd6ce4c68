"""Each channel's transport: what the provider (or the customer's page) receives, and what it refuses."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer

import pytest
import requests
import responses
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.files.base import ContentFile

from conversations import providers, safe_http
from conversations.models import Channel, Conversation, Message, Provider
from conversations.providers import base, meta, simulator, twilio, webchat
from conversations.providers.base import Unsupported
from conversations.services.outbound import send_message
from conversations.services.staff import TemplatesUnsupported, send_template_message, take_over_conversation
from conversations.tests.fakes import GRAPH_MESSAGES, TWILIO_MESSAGES
from profiles.models import ClientProfile, Contact

from . import helpers

pytestmark = pytest.mark.django_db

META_NUMBER_ID = "110000000000001"
TWILIO_WHATSAPP_NUMBER = "whatsapp:+15550001234"
TWILIO_SMS_NUMBER = "+15550001234"
PHOTO = "https://bot.example.com/files/menu.jpg"
STATUS_CALLBACK = f"{helpers.PUBLIC_BASE_URL}/webhooks/twilio/status/?ref=ref-1"


def conversation_on(
    channel: str, *, business_address: str, external_id: str = "", phone_number: str = ""
) -> Conversation:
    provider = {
        Channel.META_WHATSAPP: Provider.META,
        Channel.TWILIO_WHATSAPP: Provider.TWILIO,
        Channel.TWILIO_SMS: Provider.TWILIO,
        Channel.WEBCHAT: Provider.WEBCHAT,
    }[channel]
    profile = ClientProfile.objects.create(
        contact=Contact.objects.create(),
        provider=provider,
        external_id=external_id or uuid.uuid4().hex,
        phone_number=phone_number,
    )
    return Conversation.objects.create(profile=profile, channel=channel, business_address=business_address)


def meta_conversation(**customer) -> Conversation:
    customer = customer or {"external_id": "US.1000000000000000001", "phone_number": "+15551234567"}
    return conversation_on(Channel.META_WHATSAPP, business_address=META_NUMBER_ID, **customer)


def twilio_whatsapp_conversation() -> Conversation:
    return conversation_on(
        Channel.TWILIO_WHATSAPP,
        business_address=TWILIO_WHATSAPP_NUMBER,
        external_id="whatsapp:+15551234567",
        phone_number="+15551234567",
    )


def twilio_sms_conversation() -> Conversation:
    return conversation_on(
        Channel.TWILIO_SMS, business_address=TWILIO_SMS_NUMBER, external_id="+15551234567", phone_number="+15551234567"
    )


def simulated_conversation() -> Conversation:
    return conversation_on(
        Channel.META_WHATSAPP, business_address=simulator.SIMULATOR_NUMBER_ID, phone_number="+15550009999"
    )


def webchat_conversation() -> Conversation:
    return conversation_on(Channel.WEBCHAT, business_address=webchat.BUSINESS_ADDRESS)


class Page:
    """A customer's open page: a member of the group the transport pushes to."""

    def __init__(self, group: str) -> None:
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(group, self.channel)

    def next_event(self) -> dict:
        async def receive() -> dict:
            return await asyncio.wait_for(self.layer.receive(self.channel), timeout=10)  # a busy Redis

        return async_to_sync(receive)()


# --- The choice ------------------------------------------------------------------------------------


def test_a_simulated_conversation_is_answered_by_the_simulator_even_when_meta_is_configured(settings):
    assert settings.WHATSAPP_ACCESS_TOKEN and settings.WHATSAPP_PHONE_NUMBER_ID

    transport = providers.for_conversation(simulated_conversation())

    assert type(transport) is simulator.SimulatorTransport


@pytest.mark.parametrize(
    ("make_conversation", "transport_class", "templates", "window", "read_receipts", "media"),
    [
        (meta_conversation, meta.MetaTransport, True, True, True, True),
        (twilio_whatsapp_conversation, twilio.TwilioWhatsAppTransport, True, True, False, True),
        (twilio_sms_conversation, twilio.TwilioSmsTransport, False, False, False, True),
        (simulated_conversation, simulator.SimulatorTransport, True, True, True, True),
        (webchat_conversation, webchat.WebchatTransport, False, False, True, False),
    ],
)
def test_each_channel_gets_its_transport_and_says_what_it_can_do(
    make_conversation, transport_class, templates, window, read_receipts, media
):
    conversation = make_conversation()

    transport = providers.for_conversation(conversation)

    assert type(transport) is transport_class
    assert transport.provider == conversation.provider
    assert (transport.has_templates, transport.has_window, transport.has_read_receipts, transport.has_media) == (
        templates,
        window,
        read_receipts,
        media,
    )


# --- WhatsApp through Meta's Graph API -------------------------------------------------------------


def test_meta_sends_text_template_and_media_as_graph_documents_them(graph_ok):
    transport = providers.for_conversation(meta_conversation())

    text = transport.send_text("Hello", client_ref="ref-1")
    transport.send_template(name="order_update", language="en_US", parameters=["42"], client_ref="ref-2")
    transport.send_media(url=PHOTO, kind="image", caption="Our menu", client_ref="ref-3")
    transport.send_media(url=PHOTO, kind="document", caption="Menu", filename="menu.pdf", client_ref="")

    envelope = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "+15551234567"}
    assert graph_ok.sent(GRAPH_MESSAGES) == [
        {
            **envelope,
            "type": "text",
            "text": {"preview_url": False, "body": "Hello"},
            "biz_opaque_callback_data": "ref-1",
        },
        {
            **envelope,
            "type": "template",
            "template": {
                "name": "order_update",
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
            },
            "biz_opaque_callback_data": "ref-2",
        },
        {
            **envelope,
            "type": "image",
            "image": {"link": PHOTO, "caption": "Our menu"},
            "biz_opaque_callback_data": "ref-3",
        },
        {**envelope, "type": "document", "document": {"link": PHOTO, "caption": "Menu", "filename": "menu.pdf"}},
    ]
    assert text.provider_message_id == "wamid.OUT1"
    assert graph_ok.calls[0].request.headers["Authorization"] == "Bearer test-graph-token"


def test_meta_reaches_a_customer_without_a_phone_number_by_their_user_id(graph_ok):
    transport = providers.for_conversation(meta_conversation(external_id="US.1000000000000000077"))

    transport.send_text("Hello", client_ref="")

    [sent] = graph_ok.sent(GRAPH_MESSAGES)
    assert (sent["recipient"], "to" in sent) == ("US.1000000000000000077", False)


@pytest.mark.parametrize("channel", [Channel.META_WHATSAPP, Channel.TWILIO_WHATSAPP])
def test_providers_send_through_the_environments_proxy_and_ca_bundle_read_once(
    channel, graph_ok, twilio_ok, monkeypatch
):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.com:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/company-ca.pem")
    base._environment_settings.cache_clear()
    reads = []
    monkeypatch.setattr(requests.utils, "getproxies", lambda: reads.append(1) or {"https": os.environ["HTTPS_PROXY"]})
    transport = providers.for_conversation(
        meta_conversation() if channel == Channel.META_WHATSAPP else twilio_whatsapp_conversation()
    )
    try:
        transport.send_text("Hello", client_ref="")
        transport.send_text("Hello again", client_ref="")
    finally:
        base._environment_settings.cache_clear()

    calls = graph_ok.calls  # one fake for both: Graph's and Twilio's addresses
    assert len(calls) == 2
    for call in calls:
        assert call.request.req_kwargs["proxies"]["https"] == "http://proxy.example.com:3128"
        assert call.request.req_kwargs["verify"] == "/etc/ssl/company-ca.pem"
    assert len(reads) == 1  # not once per call


def test_meta_sends_audio_without_a_caption_and_refuses_a_sticker_by_link(graph_ok):
    transport = providers.for_conversation(meta_conversation())

    transport.send_media(url=PHOTO, kind="audio", caption="ignored", client_ref="")
    with pytest.raises(Unsupported):
        transport.send_media(url=PHOTO, kind="sticker", client_ref="")

    assert [sent["audio"] for sent in graph_ok.sent(GRAPH_MESSAGES)] == [{"link": PHOTO}]


def test_meta_marks_read_with_a_typing_indicator_only_when_switched_on(graph_ok, settings):
    transport = providers.for_conversation(meta_conversation())

    transport.mark_read("wamid.IN1")
    settings.WHATSAPP_TYPING_INDICATOR = True
    transport.mark_read("wamid.IN2")

    assert graph_ok.sent(GRAPH_MESSAGES) == [
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.IN2",
            "typing_indicator": {"type": "text"},
        }
    ]


# --- Twilio: WhatsApp and SMS ----------------------------------------------------------------------


def test_twilio_whatsapp_sends_text_template_and_media_from_the_number_the_customer_wrote_to(twilio_ok):
    transport = providers.for_conversation(twilio_whatsapp_conversation())

    text = transport.send_text("Hello", client_ref="ref-1")
    transport.send_template(
        name="HXb5b62575e6e4ff6129ad7c8efe1f983e", language="en", parameters=["Ada"], client_ref="ref-1"
    )
    transport.send_media(url=PHOTO, kind="image", caption="Our menu", client_ref="ref-1")

    addresses = {"From": TWILIO_WHATSAPP_NUMBER, "To": "whatsapp:+15551234567", "StatusCallback": STATUS_CALLBACK}
    assert twilio_ok.sent(TWILIO_MESSAGES) == [
        {**addresses, "Body": "Hello"},
        {**addresses, "ContentSid": "HXb5b62575e6e4ff6129ad7c8efe1f983e", "ContentVariables": json.dumps({"1": "Ada"})},
        {**addresses, "MediaUrl": PHOTO, "Body": "Our menu"},
    ]
    assert text.provider_message_id == f"SM{1:032d}"


def test_twilio_has_no_read_receipt_to_send(twilio_ok):
    transport = providers.for_conversation(twilio_whatsapp_conversation())

    with pytest.raises(Unsupported):
        transport.mark_read("SM" + "0" * 32)

    assert len(twilio_ok.calls) == 0


def test_sms_sends_text_and_media_but_refuses_a_template_without_calling_twilio(twilio_ok):
    transport = providers.for_conversation(twilio_sms_conversation())

    transport.send_text("Hello", client_ref="ref-1")
    transport.send_media(url=PHOTO, kind="image", client_ref="ref-1")
    with pytest.raises(Unsupported, match="SMS has no message templates"):
        transport.send_template(name="HX" + "0" * 32, language="en", parameters=[], client_ref="ref-1")
    with pytest.raises(Unsupported):
        transport.mark_read("SM" + "0" * 32)

    addresses = {"From": TWILIO_SMS_NUMBER, "To": "+15551234567", "StatusCallback": STATUS_CALLBACK}
    assert twilio_ok.sent(TWILIO_MESSAGES) == [{**addresses, "Body": "Hello"}, {**addresses, "MediaUrl": PHOTO}]


# --- The simulator and the web chat: the customer's page over the channel layer --------------------


def test_the_simulator_pushes_text_and_a_templates_summary_to_the_phone_and_marks_read():
    conversation = simulated_conversation()
    transport = providers.for_conversation(conversation)
    phone = Page(simulator.customer_group(conversation.profile.external_id))

    text = transport.send_text("Hello", client_ref="ref-1")
    template = transport.send_template(name="order_update", language="en", parameters=["1042"], client_ref="ref-2")
    transport.mark_read("wamid.SIM.1")

    assert phone.next_event() == {
        "type": "simulator.message",
        "message": {"id": text.provider_message_id, "client_ref": "ref-1", "text": "Hello"},
    }
    assert phone.next_event() == {
        "type": "simulator.message",
        "message": {
            "id": template.provider_message_id,
            "client_ref": "ref-2",
            "text": "[template order_update (en): 1042]",
        },
    }
    assert phone.next_event() == {"type": "simulator.receipt", "receipt": {"id": "wamid.SIM.1", "status": "read"}}
    assert phone.next_event() == {"type": "simulator.typing"}  # WhatsApp shows "typing…" with the read
    assert text.provider_message_id.startswith(simulator.OUTBOUND_ID_PREFIX)


def test_the_simulator_shows_a_file_staff_send_on_the_phone_from_this_host_not_meta(graph_ok):
    conversation = simulated_conversation()
    transport = providers.for_conversation(conversation)
    phone = Page(simulator.customer_group(conversation.profile.external_id))

    sent = transport.send_media(
        url="https://bot.example.com/outbound-media/abc/", kind="image", caption="The lid", client_ref="ref-9"
    )

    assert phone.next_event() == {
        "type": "simulator.message",
        "message": {
            "id": sent.provider_message_id,
            "client_ref": "ref-9",
            "text": "The lid",
            "media": {"url": "/outbound-media/abc/", "kind": "image", "filename": ""},
        },
    }
    assert len(graph_ok.calls) == 0


def test_the_simulator_downloads_what_its_customer_uploaded_once(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    media_id = simulator.store_upload(ContentFile(b"OggS voice", name="note.ogg"))
    transport = providers.for_conversation(simulated_conversation())

    download = transport.download_media(media_id, max_bytes=1000, allowed_types=frozenset({"audio/ogg"}))

    with download.file:
        assert (download.file.read(), download.content_type) == (b"OggS voice", "audio/ogg")
    with pytest.raises(safe_http.MediaFetchError):
        transport.download_media(media_id, max_bytes=1000, allowed_types=None)


def test_web_chat_pushes_text_and_read_receipts_to_the_widget_and_refuses_templates_and_files():
    conversation = webchat_conversation()
    visitor_id = conversation.profile.external_id
    transport = providers.for_conversation(conversation)
    widget = Page(webchat.visitor_group(visitor_id))

    text = transport.send_text("Hello", client_ref="ref-1")
    transport.mark_read(f"{visitor_id}:c-17")
    with pytest.raises(Unsupported, match="Web chat has no message templates"):
        transport.send_template(name="order_update", language="en", parameters=[], client_ref="ref-2")
    with pytest.raises(Unsupported):
        transport.send_media(url=PHOTO, kind="image", client_ref="ref-3")
    with pytest.raises(Unsupported):
        transport.download_media("anything", max_bytes=1000, allowed_types=None)

    assert widget.next_event() == {
        "type": "chat.message",
        "message": {"id": text.provider_message_id, "client_ref": "ref-1", "text": "Hello"},
    }
    assert widget.next_event() == {"type": "chat.receipt", "receipt": {"id": "c-17", "status": "read"}}


# --- Services ask the transport --------------------------------------------------------------------


@pytest.mark.parametrize("make_conversation", [twilio_sms_conversation, webchat_conversation])
def test_staff_cannot_send_a_template_where_the_channel_has_none(make_conversation, staff_user):
    conversation = make_conversation()
    take_over_conversation(conversation_id=conversation.pk, user=staff_user)

    with pytest.raises(TemplatesUnsupported, match="has no templates"):
        send_template_message(
            conversation_id=conversation.pk, user=staff_user, name="order_update", language="en", parameters=[]
        )

    assert not Message.objects.filter(author=Message.Author.STAFF).exists()


def test_a_template_stored_for_an_sms_conversation_fails_for_good_without_reaching_twilio(twilio_ok):
    conversation = twilio_sms_conversation()
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.STAFF,
        provider=conversation.provider,
        status=Message.Status.PENDING,
        text="[template order_update (en)]",
        template={"name": "order_update", "language": "en", "parameters": []},
    )

    send_message(message_id=message.pk)

    message.refresh_from_db()
    assert (message.status, message.error_code, message.send_attempts) == (Message.Status.FAILED, "unsupported", 1)
    assert len(twilio_ok.calls) == 0


@pytest.mark.parametrize(
    "make_conversation",
    [
        meta_conversation,
        twilio_whatsapp_conversation,
        twilio_sms_conversation,
        simulated_conversation,
        webchat_conversation,
    ],
)
def test_the_window_is_closed_before_the_customer_writes_exactly_where_the_transport_has_one(make_conversation):
    # The model cannot ask the transport (models sit below providers): this keeps the two in step.
    conversation = make_conversation()

    assert conversation.is_window_open is not providers.transport_class_for(conversation).has_window


def test_remote_copies_are_deleted_by_the_transport_of_the_provider_that_holds_them(fake_providers):
    sid = "SM" + "1" * 32
    twilio_message = f"{helpers.TWILIO_API_URL}/2010-04-01/Accounts/{helpers.TWILIO_SID}/Messages/{sid}.json"
    graph_media = f"{helpers.GRAPH_URL}/v25.0/1000000000000555"
    fake_providers.add(responses.DELETE, twilio_message, status=204)
    fake_providers.add(responses.DELETE, graph_media, json={"error": {"code": 100, "error_subcode": 33}}, status=400)

    assert providers.for_provider(Provider.TWILIO).delete_remote_copy(remote_id=sid) is True
    assert providers.for_provider(Provider.META).delete_remote_copy(remote_id="1000000000000555") is False
    assert [call.request.method for call in fake_providers.calls] == ["DELETE", "DELETE"]


# --- Connections ------------------------------------------------------------------------------------
class AnswerTogether(ThreadingHTTPServer):
    """A provider on 127.0.0.1 counting connections; it answers once `together` has as many
    calls waiting as it counts (so they are all in flight at once, each on a connection of its own)."""

    request_queue_size = 64  # all of a round's connections at once (the default, 5, drops some SYNs)

    def __init__(self, answer: tuple[int, dict]) -> None:
        self.connections = 0
        self.together = threading.Barrier(1)
        status, body = answer

        class Handler(helpers.JSONHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Graph and Twilio

            def setup(handler) -> None:
                super().setup()
                self.connections += 1

            def do_POST(handler) -> None:
                handler.rfile.read(int(handler.headers["Content-Length"]))
                self.together.wait()
                handler.answer_json(status, body)

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.mark.parametrize(
    "channel, answer",
    [
        (Channel.META_WHATSAPP, (200, {"messages": [{"id": "wamid.OUT1"}]})),
        (
            Channel.TWILIO_WHATSAPP,
            (201, {"sid": "SM" + "0" * 32, "status": "queued", "account_sid": helpers.TWILIO_SID}),
        ),
    ],
)
def test_sends_at_once_keep_their_connections_for_the_next_ones(channel, answer, settings, caplog):
    """A busy moment's connections are kept for the next one, beyond requests' 10 a host: no
    "pool is full, discarding" and no new TCP (and TLS) handshake per call under load."""
    calls = 30
    provider = AnswerTogether(answer)
    settings.WHATSAPP_GRAPH_URL = settings.TWILIO_API_URL = provider.url
    settings.PROVIDER_TIMEOUT_SECONDS = 60  # a busy machine may take seconds to start 30 threads
    transport = providers.for_conversation(
        meta_conversation() if channel == Channel.META_WHATSAPP else twilio_whatsapp_conversation()
    )
    try:
        transport.send_text("First", client_ref="")  # builds the process's client before the threads share it
        provider.together = threading.Barrier(calls, timeout=50)
        for _ in range(2):
            with ThreadPoolExecutor(calls) as pool:
                results = list(pool.map(lambda n: transport.send_text(f"Reply {n}", client_ref=""), range(calls)))
            assert all(result.provider_message_id for result in results)
    finally:
        provider.shutdown()
        provider.server_close()
        meta._session.close()  # its connections were to this server

    assert provider.connections == calls  # the second round reused the first round's connections
    assert "pool is full" not in caplog.text
