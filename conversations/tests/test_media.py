"""Media and every message type, with Graph, Twilio and their CDNs faked where `requests` meets
the network, DNS answered by a fake resolver, and OpenAI (responses and transcriptions) on the
local fake server."""

from __future__ import annotations

import base64
import io
import json
import socket
import struct
import zlib

import pytest
import requests
import responses
from django.contrib.auth import get_user_model
from PIL import Image

from accounts.roles import AGENT
from accounts.tests.helpers import log_in, make_staff
from conversations import safe_http
from conversations.media.services import MEDIA_FAILED_REPLY
from conversations.models import Attachment, Message
from conversations.services.replies import UNSUPPORTED_KIND_REPLY
from conversations.tests.fakes import GRAPH_MESSAGES, TWILIO_MESSAGES

from .helpers import GRAPH_URL, TWILIO_API_URL, TWILIO_SID, TWILIO_TOKEN, meta_body, post_meta, post_twilio
from .helpers import twilio_params as fixture_params

pytestmark = pytest.mark.django_db

# What the fake resolver answers; every other name goes to the real resolver.
DNS = {
    "lookaside.fbsbx.com": "157.240.0.35",
    "media.twiliocdn.com": "13.224.0.1",
    "evil.example": "93.184.216.34",
    "internal.example": "10.0.0.5",
}
CDN_META = "https://lookaside.fbsbx.com/whatsapp_business/attachments/"
CDN_TWILIO = "https://media.twiliocdn.com/ACe268443e43d93dab7ebef303bbe9642f/0123456789abcdef"
OGG = b"OggS\x00\x02" + bytes(range(200))  # the fake server does not decode audio
MEDIA_IDS = {
    "image": "1000000000000101",
    "audio_voice": "1000000000000102",
    "video": "1000000000000103",
    "document": "1000000000000104",
    "sticker": "1000000000000105",
}


@pytest.fixture(autouse=True)
def media_settings(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in DNS:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (DNS[host], port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return settings


def jpeg(size=(40, 30), color=(200, 30, 30), fmt="JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid PNG whose header announces width x height pixels."""
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, "PNG")
    data = bytearray(out.getvalue())
    ihdr = data[12:29]  # b"IHDR" + 13 bytes of header data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def meta_media(mock, fixture: str, body, content_type: str, *, url: str = CDN_META, headers=None):
    """Graph's media lookup for the fixture's media id, and the file behind the URL it returns."""
    media_id = MEDIA_IDS[fixture]
    mock.add(
        responses.GET,
        f"{GRAPH_URL}/v25.0/{media_id}",
        json={
            "messaging_product": "whatsapp",
            "url": f"{url}?mid={media_id}&ext=1",
            "mime_type": content_type,
            "sha256": "x",
            "file_size": len(body) if isinstance(body, bytes) else 0,
            "id": media_id,
        },
    )
    mock.add(responses.GET, url, body=body, content_type=content_type, headers=headers or {})


def twilio_params(name: str) -> dict[str, str]:
    """A Twilio fixture as our test account's API host (TWILIO_API_URL) would send it."""
    params = fixture_params(name)
    if "MediaUrl0" in params:
        params["MediaUrl0"] = params["MediaUrl0"].replace("https://api.twilio.com", TWILIO_API_URL)
    return params


def twilio_media(mock, params, body, content_type: str, *, cdn: str = CDN_TWILIO):
    mock.add(responses.GET, params["MediaUrl0"], status=307, headers={"Location": cdn})
    mock.add(responses.GET, cdn, body=body, content_type=content_type)


def calls_to(mock, url_start: str) -> list:
    return [call.request for call in mock.calls if call.request.url.startswith(url_start)]


def model_requests_text(fake_openai) -> str:
    return json.dumps(fake_openai.requests) + json.dumps([t["form"] for t in fake_openai.transcriptions])


def customer_message() -> Message:
    return Message.objects.get(author=Message.Author.CUSTOMER)


# --- Voice notes -------------------------------------------------------------------------------


def test_a_meta_voice_note_is_transcribed_and_the_reply_uses_the_transcript(client, graph_ok, fake_openai):
    meta_media(graph_ok, "audio_voice", OGG, "audio/ogg")
    fake_openai.transcribe("¿Abren el domingo?")
    fake_openai.answer("Sí, de 10 a 14.")

    post_meta(client, meta_body("audio_voice"))

    [transcription] = fake_openai.transcriptions
    assert transcription["form"]["model"] == "gpt-transcribe"
    assert "language" not in transcription["form"]
    assert transcription["file"] == ("audio.ogg", "audio/ogg", OGG)
    [model_request] = fake_openai.requests
    assert model_request["input"][-1] == {"role": "user", "content": "¿Abren el domingo?"}
    assert graph_ok.sent(GRAPH_MESSAGES)[0]["text"]["body"] == "Sí, de 10 a 14."
    inbound = customer_message()
    assert inbound.text == "¿Abren el domingo?"
    [attachment] = inbound.attachments.all()
    assert attachment.transcript == "¿Abren el domingo?"
    assert attachment.status == Attachment.Status.STORED and attachment.is_voice
    assert attachment.file.read() == OGG and attachment.size_bytes == len(OGG)
    [lookup] = calls_to(graph_ok, f"{GRAPH_URL}/v25.0/1000000000000102")
    assert "phone_number_id=110000000000001" in lookup.url
    assert lookup.headers["Authorization"] == "Bearer test-graph-token"
    assert calls_to(graph_ok, CDN_META)[0].headers["Authorization"] == "Bearer test-graph-token"
    assert "1000000000000102" not in model_requests_text(fake_openai)


def test_a_twilio_voice_note_follows_the_redirect_without_sending_credentials_to_the_cdn(
    client, twilio_ok, fake_openai
):
    params = twilio_params("whatsapp_voice_note")
    twilio_media(twilio_ok, params, OGG, "audio/ogg")
    fake_openai.transcribe("Is my order ready?")

    post_twilio(client, params)

    [api_call] = calls_to(twilio_ok, params["MediaUrl0"])
    expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert api_call.headers["Authorization"] == expected
    [cdn_call] = calls_to(twilio_ok, CDN_TWILIO)
    assert "Authorization" not in cdn_call.headers
    assert fake_openai.requests[0]["input"][-1]["content"] == "Is my order ready?"
    assert len(twilio_ok.sent(TWILIO_MESSAGES)) == 1
    text = model_requests_text(fake_openai)
    assert TWILIO_SID not in text and "MM6076" not in text and "twilio" not in text.lower()


def test_a_voice_note_in_a_conversation_staff_took_over_is_still_transcribed_but_not_answered(
    client, graph_ok, fake_openai
):
    post_meta(client, meta_body("text"))
    conversation = customer_message().conversation
    conversation.mode = conversation.Mode.HUMAN
    conversation.save()
    meta_media(graph_ok, "audio_voice", OGG, "audio/ogg")
    fake_openai.transcribe("Hello staff")

    post_meta(client, meta_body("audio_voice"))

    voice = Message.objects.get(kind=Message.Kind.AUDIO)
    assert voice.text == "Hello staff" and voice.status == Message.Status.HANDLED
    assert len(fake_openai.requests) == 1  # only the text before the takeover
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1


def test_a_transcription_that_keeps_failing_gets_a_request_to_type_and_keeps_the_file(
    client, graph_ok, fake_openai, settings
):
    settings.MEDIA_DOWNLOAD_ATTEMPTS = 3
    meta_media(graph_ok, "audio_voice", OGG, "audio/ogg")
    fake_openai.fail_transcription(500, "server_error", times=3)

    post_meta(client, meta_body("audio_voice"))

    assert len(fake_openai.transcriptions) == 3
    assert fake_openai.requests == []
    [sent] = graph_ok.sent(GRAPH_MESSAGES)
    assert sent["text"]["body"] == MEDIA_FAILED_REPLY.format(what="voice message")
    inbound = customer_message()
    assert inbound.status == Message.Status.HANDLED
    attachment = inbound.attachments.get()
    assert attachment.status == Attachment.Status.STORED and attachment.file.read() == OGG
    assert attachment.transcript == "" and "500" in attachment.error


# --- Photos ------------------------------------------------------------------------------------


def test_a_meta_photo_reaches_the_model_as_a_downscaled_data_url_with_its_caption(
    client, graph_ok, fake_openai, settings
):
    settings.MEDIA_IMAGE_MAX_SIDE = 512
    meta_media(graph_ok, "image", jpeg((2000, 1000)), "image/jpeg")

    post_meta(client, meta_body("image"))

    content = fake_openai.requests[0]["input"][-1]["content"]
    assert content[0] == {"type": "input_text", "text": "Is this the right spare part?"}
    assert content[1]["type"] == "input_image" and content[1]["detail"] == "auto"
    prefix, encoded = content[1]["image_url"].split(",", 1)
    assert prefix == "data:image/jpeg;base64"
    sent_image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert sent_image.size == (512, 256)
    text = model_requests_text(fake_openai)
    for provider_detail in ("lookaside", "fbsbx", "1000000000000101", "wamid", "graph.test", "http"):
        assert provider_detail not in text.replace(content[1]["image_url"], "")
    attachment = customer_message().attachments.get()
    assert attachment.caption == "Is this the right spare part?"
    assert Image.open(attachment.file).size == (2000, 1000)  # the original is what is kept


def test_a_twilio_photo_reaches_the_model_as_a_data_url_and_no_sid_or_url(client, twilio_ok, fake_openai):
    params = twilio_params("whatsapp_image_caption")
    twilio_media(twilio_ok, params, jpeg(), "image/jpeg")

    post_twilio(client, params)

    content = fake_openai.requests[0]["input"][-1]["content"]
    assert content[0]["text"] == "Is this the right spare part?"
    assert content[1]["image_url"].startswith("data:image/jpeg;base64,")
    text = model_requests_text(fake_openai).replace(content[1]["image_url"], "")
    for provider_detail in (TWILIO_SID, "MM5bd7", "MEb0d8", "twilio", "http"):
        assert provider_detail not in text
    assert len(twilio_ok.sent(TWILIO_MESSAGES)) == 1


def test_a_photo_without_caption_still_reaches_the_model(client, graph_ok, fake_openai):
    body = json.loads(meta_body("image"))
    del body["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["caption"]
    meta_media(graph_ok, "image", jpeg(), "image/jpeg")

    post_meta(client, json.dumps(body).encode())

    [part] = fake_openai.requests[0]["input"][-1]["content"]
    assert part["type"] == "input_image"


def test_only_the_current_messages_photo_goes_to_the_model(client, graph_ok, fake_openai):
    meta_media(graph_ok, "image", jpeg(), "image/jpeg")
    post_meta(client, meta_body("image"))
    post_meta(client, meta_body("text"))

    assert "input_image" not in json.dumps(fake_openai.requests[1])
    assert "Is this the right spare part?" in json.dumps(fake_openai.requests[1])


def test_a_pixel_bomb_is_refused_unopened_and_the_customer_is_asked_to_type(client, graph_ok, fake_openai):
    meta_media(graph_ok, "image", png_claiming(8000, 8000), "image/png")

    post_meta(client, meta_body("image"))

    assert fake_openai.requests == []
    assert graph_ok.sent(GRAPH_MESSAGES)[0]["text"]["body"] == MEDIA_FAILED_REPLY.format(what="photo")
    attachment = customer_message().attachments.get()
    assert "pixels is over the limit" in attachment.error


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_an_image_in_a_format_outside_the_allow_list_is_not_opened(client, graph_ok, fake_openai, fmt):
    meta_media(graph_ok, "image", jpeg(fmt=fmt), "image/jpeg")  # the server claims JPEG

    post_meta(client, meta_body("image"))

    assert fake_openai.requests == []
    assert graph_ok.sent(GRAPH_MESSAGES)[0]["text"]["body"] == MEDIA_FAILED_REPLY.format(what="photo")


def test_a_content_type_not_allowed_for_the_kind_is_refused(client, graph_ok, fake_openai):
    meta_media(graph_ok, "image", b"<html><script>alert(1)</script></html>", "text/html")

    post_meta(client, meta_body("image"))

    attachment = customer_message().attachments.get()
    assert attachment.status == Attachment.Status.FAILED
    assert "unexpected content type text/html" in attachment.error
    assert fake_openai.requests == []


# --- Where downloads may go ----------------------------------------------------------------------


def test_a_twilio_media_url_on_a_foreign_host_is_refused_before_connecting(client, twilio_ok, fake_openai):
    params = twilio_params("whatsapp_voice_note")
    params["MediaUrl0"] = params["MediaUrl0"].replace(TWILIO_API_URL, "https://evil.example")
    twilio_ok.add(responses.GET, params["MediaUrl0"], body=OGG, content_type="audio/ogg")

    post_twilio(client, params)

    assert [c.request.url for c in twilio_ok.calls] == [TWILIO_MESSAGES]  # only the polite reply
    assert twilio_ok.sent(TWILIO_MESSAGES)[0]["Body"] == MEDIA_FAILED_REPLY.format(what="voice message")
    inbound = customer_message()
    assert inbound.status == Message.Status.HANDLED
    assert inbound.attachments.get().status == Attachment.Status.FAILED


@pytest.mark.parametrize(
    "forge",
    [
        lambda url: url.replace(TWILIO_SID, "AC" + "0" * 32),
        lambda url: url.replace(f"{TWILIO_SID}/", f"{TWILIO_SID}/../AC{'0' * 32}/"),
        lambda url: url.replace("https://", "http://"),
    ],
    ids=["other account", "dot segments", "plain http"],
)
def test_a_twilio_media_url_outside_our_accounts_media_gets_no_request(client, twilio_ok, forge):
    params = twilio_params("whatsapp_voice_note")
    params["MediaUrl0"] = forge(params["MediaUrl0"])

    post_twilio(client, params)

    assert [c.request.url for c in twilio_ok.calls] == [TWILIO_MESSAGES]  # only the polite reply
    assert twilio_ok.sent(TWILIO_MESSAGES)[0]["Body"] == MEDIA_FAILED_REPLY.format(what="voice message")
    assert "not this account's media" in customer_message().attachments.get().error


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1/secret",
        "https://127.0.0.1/secret",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:169.254.169.254]/latest/meta-data/",
        "https://internal.example/secret",  # a name that resolves to a private address
    ],
)
def test_a_redirect_to_a_private_or_metadata_address_is_refused_before_connecting(client, twilio_ok, target):
    params = twilio_params("whatsapp_voice_note")
    twilio_media(twilio_ok, params, OGG, "audio/ogg", cdn=target)

    post_twilio(client, params)

    assert len(calls_to(twilio_ok, params["MediaUrl0"])) == 1  # a refusal is final, not retried
    others = [c.request.url for c in twilio_ok.calls if c.request.url != params["MediaUrl0"]]
    assert others == [TWILIO_MESSAGES]  # the polite reply; nothing went to the redirect target
    assert twilio_ok.sent(TWILIO_MESSAGES)[0]["Body"] == MEDIA_FAILED_REPLY.format(what="voice message")
    assert "non-public" in customer_message().attachments.get().error or "https" in (
        customer_message().attachments.get().error
    )


def test_a_graph_media_url_pointing_at_the_metadata_service_is_refused_and_gets_no_token(client, graph_ok, fake_openai):
    meta_media(graph_ok, "image", jpeg(), "image/jpeg", url="https://169.254.169.254/latest/")

    post_meta(client, meta_body("image"))

    assert calls_to(graph_ok, "https://169.254.169.254") == []
    assert fake_openai.requests == []


def test_the_connection_itself_refuses_a_private_address_even_past_the_url_check(httpserver):
    httpserver.expect_request("/secret").respond_with_data("secret")

    # Straight to the adapter, as if DNS had changed between the check and the connection.
    with pytest.raises(safe_http.UnsafeURL):
        safe_http.guarded_session().get(httpserver.url_for("/secret"), timeout=2)

    assert [entry for entry, _ in httpserver.log if entry.path == "/secret"] == []


def test_the_configured_provider_hosts_are_exempt_from_the_address_check(settings, httpserver):
    settings.WHATSAPP_GRAPH_URL = httpserver.url_for("/")
    httpserver.expect_request("/file").respond_with_data(b"abc", content_type="image/png")

    download = safe_http.fetch(httpserver.url_for("/file"), max_bytes=10, allowed_types=frozenset({"image/png"}))

    assert download.file.read() == b"abc" and download.size_bytes == 3


# --- Size caps -----------------------------------------------------------------------------------


class EndlessBody(io.RawIOBase):
    """A response body that never ends and counts how much of it was read."""

    def __init__(self):
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        buffer[:] = b"\0" * len(buffer)
        self.bytes_read += len(buffer)
        return len(buffer)


@pytest.mark.parametrize("content_length", [str(50 * 1024 * 1024), "1000", None])
def test_an_oversized_file_is_refused_without_being_read_whole(client, graph_ok, fake_openai, settings, content_length):
    settings.MEDIA_MAX_BYTES = {**settings.MEDIA_MAX_BYTES, "audio": 256 * 1024}
    raw = EndlessBody()
    headers = {"Content-Length": content_length} if content_length else {}
    meta_media(graph_ok, "audio_voice", io.BufferedReader(raw), "audio/ogg", headers=headers)

    post_meta(client, meta_body("audio_voice"))

    assert raw.bytes_read <= 256 * 1024 + 2 * 64 * 1024
    if content_length and int(content_length) > 256 * 1024:
        assert raw.bytes_read == 0  # an honest Content-Length over the cap is refused unread
    attachment = customer_message().attachments.get()
    assert attachment.status == Attachment.Status.FAILED and not attachment.file
    assert "cap" in attachment.error or "longer than" in attachment.error
    assert graph_ok.sent(GRAPH_MESSAGES)[0]["text"]["body"] == MEDIA_FAILED_REPLY.format(what="voice message")
    assert fake_openai.transcriptions == []


def test_graph_announcing_a_file_over_the_cap_is_not_downloaded(client, graph_ok, settings):
    settings.MEDIA_MAX_BYTES = {**settings.MEDIA_MAX_BYTES, "image": 1000}
    graph_ok.add(
        responses.GET,
        f"{GRAPH_URL}/v25.0/1000000000000101",
        json={"url": CDN_META, "mime_type": "image/jpeg", "file_size": 5_000_000, "id": "1000000000000101"},
    )

    post_meta(client, meta_body("image"))

    assert calls_to(graph_ok, CDN_META) == []
    assert "over the cap" in customer_message().attachments.get().error


# --- Failures of the media API --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "tries"),
    [
        ({"status": 401, "json": {"error": {"code": 190}}}, 1),
        ({"status": 404, "json": {"error": {"code": 100}}}, 3),
        ({"body": requests.ConnectTimeout("connect timeout")}, 3),
        ({"body": requests.ReadTimeout("read timeout")}, 3),
    ],
)
def test_a_media_api_failure_gets_a_polite_fallback_and_keeps_the_message(
    client, graph_ok, fake_openai, settings, failure, tries
):
    settings.MEDIA_DOWNLOAD_ATTEMPTS = 3
    graph_ok.add(responses.GET, f"{GRAPH_URL}/v25.0/1000000000000102", **failure)

    assert post_meta(client, meta_body("audio_voice")).status_code == 200

    assert len(calls_to(graph_ok, f"{GRAPH_URL}/v25.0/1000000000000102")) == tries
    [sent] = graph_ok.sent(GRAPH_MESSAGES)
    assert sent["text"]["body"] == MEDIA_FAILED_REPLY.format(what="voice message")
    inbound = customer_message()
    assert inbound.status == Message.Status.HANDLED
    attachment = inbound.attachments.get()
    assert attachment.status == Attachment.Status.FAILED and attachment.provider_ref == "1000000000000102"
    assert fake_openai.requests == [] and fake_openai.transcriptions == []


def test_a_transient_404_then_success_is_retried_into_a_reply(client, twilio_ok, fake_openai):
    params = twilio_params("whatsapp_voice_note")
    twilio_ok.add(responses.GET, params["MediaUrl0"], status=404)
    twilio_media(twilio_ok, params, OGG, "audio/ogg")
    fake_openai.transcribe("Second try worked")

    post_twilio(client, params)

    assert fake_openai.requests[0]["input"][-1]["content"] == "Second try worked"


# --- Every message type of both providers ----------------------------------------------------------

MODEL = "model"
EXPLAIN = "explain"
META_TYPES = {
    "text": MODEL,
    "image": MODEL,
    "audio_voice": MODEL,
    "location": MODEL,
    "interactive_button_reply": MODEL,
    "interactive_list_reply": MODEL,
    "interactive_nfm_reply": MODEL,
    "button_template_quick_reply": MODEL,
    "video": EXPLAIN,
    "document": EXPLAIN,
    "sticker": EXPLAIN,
    "contacts": EXPLAIN,
    "order": EXPLAIN,
    "unsupported": EXPLAIN,
    "reaction": None,
    "reaction_removed": None,
    "system_user_changed_number": None,
}
META_FILES = {
    "image": (jpeg(), "image/jpeg"),
    "audio_voice": (OGG, "audio/ogg"),
    "video": (b"\0\0\0\x18ftypmp42", "video/mp4"),
    "document": (b"%PDF-1.4 test", "application/pdf"),
    "sticker": (jpeg(fmt="WEBP"), "image/webp"),
}


@pytest.mark.parametrize("fixture", sorted(META_TYPES))
def test_every_meta_message_type_is_stored_and_answered_as_it_should(client, graph_ok, fake_openai, fixture):
    if fixture in META_FILES:
        meta_media(graph_ok, fixture, *META_FILES[fixture])
    fake_openai.answer("Model answer")

    post_meta(client, meta_body(fixture))

    inbound = customer_message()
    assert inbound.status == Message.Status.HANDLED
    sent = [s["text"]["body"] for s in graph_ok.sent(GRAPH_MESSAGES)]
    expected = {MODEL: ["Model answer"], EXPLAIN: [UNSUPPORTED_KIND_REPLY], None: []}[META_TYPES[fixture]]
    assert sent == expected
    if fixture in META_FILES:
        attachment = inbound.attachments.get()
        assert attachment.status == Attachment.Status.STORED
        assert attachment.file.read() == META_FILES[fixture][0]
        assert attachment.content_type == META_FILES[fixture][1]
    if fixture == "document":
        assert inbound.attachments.get().original_filename == "invoice-2026-001.pdf"
        assert inbound.attachments.get().caption == "My invoice"


TWILIO_TYPES = {
    "whatsapp_text": None,
    "sms_inbound": None,
    "whatsapp_location": None,
    "whatsapp_quick_reply_button": None,
    "whatsapp_image_caption": (jpeg(), "image/jpeg"),
    "whatsapp_voice_note": (OGG, "audio/ogg"),
}


@pytest.mark.parametrize("fixture", sorted(TWILIO_TYPES))
def test_every_twilio_message_type_reaches_the_model_as_words_or_pixels(client, twilio_ok, fake_openai, fixture):
    params = twilio_params(fixture)
    if TWILIO_TYPES[fixture]:
        twilio_media(twilio_ok, params, *TWILIO_TYPES[fixture])
    fake_openai.transcribe("Voice words")
    fake_openai.answer("Model answer")

    post_twilio(client, params)

    assert [s["Body"] for s in twilio_ok.sent(TWILIO_MESSAGES)] == ["Model answer"]
    last_turn = json.dumps(fake_openai.requests[0]["input"][-1]["content"])
    expected = {
        "whatsapp_location": "Example Coffee, 1 Example Plaza",
        "whatsapp_quick_reply_button": "Yes, confirm",
        "whatsapp_image_caption": "data:image/jpeg;base64,",
        "whatsapp_voice_note": "Voice words",
    }.get(fixture, params["Body"])
    assert expected in last_turn


def test_a_twilio_document_is_stored_and_explained(client, twilio_ok, fake_openai):
    params = twilio_params("whatsapp_image_caption")
    params["MediaContentType0"] = "application/pdf"
    twilio_media(twilio_ok, params, b"%PDF-1.4", "application/pdf")

    post_twilio(client, params)

    assert customer_message().attachments.get().file.read() == b"%PDF-1.4"
    assert twilio_ok.sent(TWILIO_MESSAGES)[0]["Body"] == UNSUPPORTED_KIND_REPLY
    assert fake_openai.requests == []


# --- Reactions -------------------------------------------------------------------------------------


def test_a_reaction_is_stored_on_the_message_it_reacts_to_and_removing_it_clears_it(client, graph_ok, fake_openai):
    post_meta(client, meta_body("text"))
    reply = Message.objects.get(author=Message.Author.BOT)
    reacted_id = json.loads(meta_body("reaction"))["entry"][0]["changes"][0]["value"]["messages"][0]["reaction"]
    Message.objects.filter(pk=reply.pk).update(provider_message_id=reacted_id["message_id"])

    post_meta(client, meta_body("reaction"))
    reply.refresh_from_db()
    assert reply.reaction == "\N{THUMBS UP SIGN}"

    post_meta(client, meta_body("reaction_removed"))
    reply.refresh_from_db()
    assert reply.reaction == ""
    assert len(graph_ok.sent(GRAPH_MESSAGES)) == 1
    assert len(fake_openai.requests) == 1


# --- Staff access ----------------------------------------------------------------------------------


@pytest.fixture
def stored_voice_note(client, graph_ok, fake_openai):
    meta_media(graph_ok, "audio_voice", OGG, "audio/ogg")
    post_meta(client, meta_body("audio_voice"))
    return customer_message().attachments.get()


def test_staff_get_the_file_through_an_authenticated_url(client, stored_voice_note):
    from conversations.media.views import staff_attachment_url

    url = staff_attachment_url(stored_voice_note)
    client.force_login(make_staff("agent", AGENT))

    response = client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "audio/ogg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]
    assert b"".join(response.streaming_content) == OGG


def test_the_media_url_is_refused_to_anonymous_and_non_staff_users(client, stored_voice_note):
    from conversations.media.views import staff_attachment_url

    url = staff_attachment_url(stored_voice_note)
    assert client.get(url).status_code == 302  # to the admin login

    client.force_login(get_user_model().objects.create_user("customer", password="x"))
    assert client.get(url).status_code == 302

    client.force_login(get_user_model().objects.create_user("staff", password="x", is_staff=True))
    assert client.get(url).status_code == 403  # staff, but no role that reads conversations

    client.force_login(make_staff("agent", AGENT))
    assert (
        client.get(url.replace(str(stored_voice_note.message.uid), "00000000-0000-0000-0000-000000000000")).status_code
        == 404
    )


def test_admin_shows_an_audio_player_and_the_transcript(client, stored_voice_note):
    log_in(client, get_user_model().objects.create_superuser("boss", password="x"))

    response = client.get(f"/admin/conversations/attachment/{stored_voice_note.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "<audio controls" in page
    assert f"/staff/attachments/{stored_voice_note.message.uid}/{stored_voice_note.pk}/" in page
    assert "Hello, this is a voice note." in page


def test_deleting_a_conversation_deletes_its_media_files(stored_voice_note):
    storage, name = stored_voice_note.file.storage, stored_voice_note.file.name
    assert storage.exists(name)

    stored_voice_note.message.conversation.profile.delete()

    assert not Attachment.objects.exists()
    assert not storage.exists(name)
