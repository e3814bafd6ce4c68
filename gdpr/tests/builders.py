"""Customers with a history, built through the real signed webhooks (then completed the way the
media pipeline and the OpenAI conversation mode would: attachments, transcripts, OpenAI ids)."""

from __future__ import annotations

import base64

from django.core.files.base import ContentFile

from conversations.models import Attachment, Conversation, Message, ToolCall
from conversations.tests.helpers import meta_body, post_meta, post_twilio, twilio_params

ADA = {
    "phone": "+15551234567",
    "wa_id": "15551234567",
    "bsuid": "US.1000000000000000001",
    "name": "Ada Lovelace",
    "texts": ["Hi! What are your opening hours?"],
}
GRACE = {
    "phone": "+15557654321",
    "wa_id": "15557654321",
    "bsuid": "US.1000000000000000777",
    "name": "Grace Hopper",
    "texts": ["Do you ship compilers to Arlington?", "Is this the right bug?"],
}

VOICE_BYTES = b"OggS\x00voice-note-of-ada"
IMAGE_BYTES = b"\xff\xd8\xffjpeg-photo-of-ada"
TRANSCRIPT = "Could you deliver the blue teapot to my flat on Baker Street?"
CAPTION = "The teapot I mean"
ADA_CAPTION = "Is this the right spare part?"  # the image fixture's caption


def wamid_phone_part(wa_id: str) -> str:
    """Real wamids carry the customer's number, base64-encoded, after "wamid."."""
    return base64.b64encode(b"\x1c\x18\x0b" + wa_id.encode() + b"\x15").decode()


def meta_body_as(name: str, person: dict, *, suffix: str = "") -> bytes:
    """A Meta fixture sent by another person (re-signed by post_meta over the new bytes)."""
    body = meta_body(name).decode()
    body = body.replace(ADA["wa_id"], person["wa_id"]).replace(ADA["bsuid"], person["bsuid"])
    body = body.replace(ADA["name"], person["name"]).replace('"wamid.', f'"wamid.{suffix}')
    body = body.replace(wamid_phone_part(ADA["wa_id"]), wamid_phone_part(person["wa_id"]))
    if person is not ADA:
        body = body.replace(ADA["texts"][0], person["texts"][0]).replace(ADA_CAPTION, person["texts"][1])
    return body.encode()


def stored(message: Message, name: str, content: bytes, **fields) -> Attachment:
    """The attachment the media pipeline recorded for `message`, with its file in storage (the
    Graph media API is not faked in these tests, so the download itself did not happen)."""
    attachment = Attachment.objects.get(message=message)
    for field_name, value in fields.items():
        setattr(attachment, field_name, value)
    attachment.status = Attachment.Status.STORED
    attachment.file.save(name, ContentFile(content), save=True)
    return attachment


def build_ada(client, *, with_twilio: bool = True) -> dict:
    """Ada writes text, a voice note and a photo on Meta (and text on Twilio WhatsApp)."""
    post_meta(client, meta_body("text"))
    post_meta(client, meta_body("audio_voice"))
    post_meta(client, meta_body("image"))
    if with_twilio:
        post_twilio(client, twilio_params("whatsapp_text"))
    voice = Message.objects.get(kind=Message.Kind.AUDIO, conversation__profile__external_id=ADA["bsuid"])
    image = Message.objects.get(kind=Message.Kind.IMAGE, conversation__profile__external_id=ADA["bsuid"])
    voice_attachment = stored(voice, "voice.ogg", VOICE_BYTES, content_type="audio/ogg", transcript=TRANSCRIPT)
    image_attachment = stored(image, "photo.jpg", IMAGE_BYTES, content_type="image/jpeg", caption=CAPTION)
    meta_conversation = Conversation.objects.get(profile__external_id=ADA["bsuid"])
    Conversation.objects.filter(pk=meta_conversation.pk).update(openai_conversation_id="conv_ada")
    first_reply = Message.objects.filter(conversation=meta_conversation, author=Message.Author.BOT).first()
    Message.objects.filter(pk=first_reply.pk).update(openai_response_id="resp_ada_1")
    # An order lookup the model made while answering her, with her details in and out.
    ToolCall.objects.create(
        conversation=meta_conversation,
        message=first_reply.in_reply_to,
        agent_name="shipping",
        tool_name="lookup_order",
        arguments={"phone": ADA["phone"], "order_id": "1001"},
        status=ToolCall.Status.OK,
        result='{"name": "Ada Lovelace", "status": "shipped"}',
    )
    return {
        "attachments": [voice_attachment, image_attachment],
        "file_names": [voice_attachment.file.name, image_attachment.file.name],
    }


def build_grace(client) -> None:
    post_meta(client, meta_body_as("text", GRACE, suffix="GRACE"))
    post_meta(client, meta_body_as("image", GRACE, suffix="GRACE"))
    image = Message.objects.get(kind=Message.Kind.IMAGE, conversation__profile__external_id=GRACE["bsuid"])
    stored(image, "grace.jpg", b"grace-photo", content_type="image/jpeg", caption="Grace's own photo")
