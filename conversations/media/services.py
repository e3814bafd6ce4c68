"""Media of customer messages: record where it is, download and keep it, read it for the model.

Voice notes become words (a transcript), photos become image input (a data URL built from
the downloaded bytes). Provider URLs, SIDs and media ids stay in the database: the model only
ever sees words and pixels.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import os
import time
from dataclasses import dataclass
from io import BytesIO

from django.conf import settings
from django.core.files import File
from django.utils import timezone

from conversations import providers, safe_http
from conversations.ai import ModelUnavailable, transcribe_audio
from conversations.models import Attachment, Message
from conversations.providers.base import InboundMessage, Unsupported
from conversations.turns import Turn

logger = logging.getLogger(__name__)

K = Message.Kind
# What the model can take in once the file is read: words from audio, pixels from a photo.
READABLE_KINDS = {K.AUDIO, K.IMAGE}
MEDIA_FAILED_REPLY = "Sorry, I couldn't open the {what} you sent. Could you type your message instead, please?"
_WHAT: dict[str, str] = {K.AUDIO: "voice message", K.IMAGE: "photo"}

_ALLOWED_TYPES: dict[str, frozenset[str] | None] = {
    K.IMAGE: frozenset({"image/jpeg", "image/png", "image/webp"}),
    K.STICKER: frozenset({"image/webp", "image/png"}),
    K.AUDIO: frozenset(
        {
            "audio/ogg",
            "audio/opus",
            "audio/mpeg",
            "audio/mp3",
            "audio/mp4",
            "audio/m4a",
            "audio/x-m4a",
            "audio/aac",
            "audio/amr",
            "audio/wav",
            "audio/x-wav",
            "audio/webm",
        }
    ),
    K.VIDEO: frozenset({"video/mp4", "video/3gpp", "video/quicktime"}),
    K.DOCUMENT: None,  # kept for staff, never opened here
}
# Extensions the transcription API recognises (mimetypes would say .oga for audio/ogg).
_EXTENSIONS = {
    "audio/ogg": ".ogg",
    "audio/opus": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/mp4": ".m4a",
    "audio/m4a": ".m4a",
    "audio/x-m4a": ".m4a",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/webm": ".webm",
    "image/jpeg": ".jpg",
}
# Pillow opens only these, whatever the bytes claim to be.
_IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")


class UnreadableImage(Exception):
    pass


@dataclass(frozen=True)
class PreparedMedia:
    images: tuple[str, ...] = ()  # data URLs of the message's photos
    is_readable: bool = False  # the model can answer it: transcript or photo ready
    fallback_reply: str = ""  # set when readable media could not be read: ask to type instead


def record_inbound_media(*, pairs: list[tuple[Message, InboundMessage]]) -> None:
    """Create a pending Attachment per media reference of each recorded message (one INSERT for
    them all) and store reactions on their targets."""
    Attachment.objects.bulk_create(
        Attachment(
            message=message,
            provider_ref=ref.provider_ref,
            content_type=ref.mime_type.split(";", 1)[0].strip()[:100],
            original_filename=ref.filename[:255],
            caption=ref.caption,
            is_voice=ref.is_voice,
        )
        for message, inbound in pairs
        for ref in inbound.media
    )
    for message, inbound in pairs:
        if inbound.reacts_to:
            # An empty emoji is Meta's "reaction removed".
            Message.objects.filter(
                conversation_id=message.conversation_id,
                provider=inbound.provider,
                provider_message_id=inbound.reacts_to,
            ).update(reaction=inbound.text[:32], updated_at=timezone.now())


def prepare_inbound_media(*, message: Message) -> PreparedMedia:
    """Download and keep the message's files, transcribe audio into `message.text` (saved),
    and build image input. Failures are recorded on the Attachment; nothing is deleted."""
    if message.kind == K.TEXT:
        return PreparedMedia()  # providers give a message with a file the file's kind, never `text`
    attachments = list(Attachment.objects.filter(message=message).select_related("message").order_by("id"))
    if not attachments:
        return PreparedMedia()
    images: list[str] = []
    transcripts: list[str] = []
    failed = False
    for attachment in attachments:
        try:
            _ensure_stored(attachment, message)
            if message.kind == K.AUDIO:
                transcripts.append(_ensure_transcript(attachment))
            elif message.kind == K.IMAGE:
                images.append(image_data_url(attachment=attachment))
        except (safe_http.MediaFetchError, ModelUnavailable, UnreadableImage) as exc:
            failed = True
            logger.warning("Media %s of message %s unusable: %s", attachment.pk, message.pk, exc)
            Attachment.objects.filter(pk=attachment.pk).update(error=str(exc)[:255])
        # Downloads and transcriptions take a while: keep the claim fresh so the sweep leaves it be.
        Message.objects.filter(pk=message.pk, status=Message.Status.PROCESSING).update(updated_at=timezone.now())
    if transcripts:
        _use_transcripts_as_words(message, transcripts)
    if message.kind not in READABLE_KINDS:
        return PreparedMedia()
    if failed:
        return PreparedMedia(fallback_reply=MEDIA_FAILED_REPLY.format(what=_WHAT[message.kind]))
    return PreparedMedia(images=tuple(images), is_readable=True)


def add_images_to_turns(*, turns: list[Turn], message: Message, images: tuple[str, ...]) -> list[Turn]:
    """The prompt's turns with the current message's photos on its (last) turn."""
    if not images:
        return turns
    if message.text.strip() and turns and turns[-1].role == "user":
        return [*turns[:-1], Turn(role="user", text=turns[-1].text, images=images)]
    return [*turns, Turn(role="user", text="", images=images)]


def _ensure_stored(attachment: Attachment, message: Message) -> None:
    if attachment.status == Attachment.Status.STORED:
        return
    try:
        download = _download_with_retries(attachment, message)
    except safe_http.MediaFetchError:
        Attachment.objects.filter(pk=attachment.pk).update(status=Attachment.Status.FAILED)
        raise
    with download.file:
        extension = _EXTENSIONS.get(download.content_type) or mimetypes.guess_extension(download.content_type) or ""
        # The customer's filename stays in the database; the storage path names only the kind.
        attachment.file.save(f"{message.kind}{extension}", File(download.file), save=False)
    attachment.content_type = download.content_type
    attachment.size_bytes = download.size_bytes
    attachment.sha256 = download.sha256
    attachment.status = Attachment.Status.STORED
    attachment.error = ""
    fields = ("file", "content_type", "size_bytes", "sha256", "status", "error")
    if not Attachment.objects.filter(pk=attachment.pk).update(**{name: getattr(attachment, name) for name in fields}):
        # Erased during the download: the file must not outlive its row.
        attachment.file.delete(save=False)
        raise Attachment.DoesNotExist(f"attachment {attachment.pk} was erased during its download")


def _download_with_retries(attachment: Attachment, message: Message) -> safe_http.Download:
    attempts = settings.MEDIA_DOWNLOAD_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            return _download(attachment, message)
        except safe_http.MediaFetchError as exc:
            if not exc.is_transient or attempt == attempts:
                raise
            logger.info("Media download %s of message %s failed (%s); retrying.", attempt, message.pk, exc)
            time.sleep(_backoff(attempt))
    raise AssertionError("unreachable")


def _download(attachment: Attachment, message: Message) -> safe_http.Download:
    max_bytes = settings.MEDIA_MAX_BYTES.get(message.kind, settings.MEDIA_MAX_BYTES[K.DOCUMENT])
    transport = providers.for_conversation(message.conversation)
    try:
        return transport.download_media(
            attachment.provider_ref, max_bytes=max_bytes, allowed_types=_ALLOWED_TYPES.get(message.kind)
        )
    except Unsupported as exc:
        raise safe_http.MediaFetchError(str(exc), is_transient=False) from exc


def _ensure_transcript(attachment: Attachment) -> str:
    if attachment.transcript:
        return attachment.transcript
    attempts = settings.MEDIA_DOWNLOAD_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            with attachment.file.open("rb") as audio:
                text = transcribe_audio(
                    audio=audio,
                    filename=os.path.basename(attachment.file.name or ""),
                    content_type=attachment.content_type,
                )
            break
        except ModelUnavailable as exc:
            if not exc.is_transient or attempt == attempts:
                raise
            logger.info("Transcription %s of attachment %s failed (%s); retrying.", attempt, attachment.pk, exc)
            time.sleep(_backoff(attempt))
    if not text:
        raise ModelUnavailable("empty transcript", is_transient=False)
    Attachment.objects.filter(pk=attachment.pk).update(transcript=text)
    return text


def _use_transcripts_as_words(message: Message, transcripts: list[str]) -> None:
    words = "\n\n".join(transcripts)
    if words in message.text:
        return
    message.text = f"{message.text.strip()}\n\n{words}" if message.text.strip() else words
    Message.objects.filter(pk=message.pk).update(text=message.text, updated_at=timezone.now())


def image_data_url(*, attachment: Attachment) -> str:
    """A downscaled JPEG of a stored photo as a data URL; raises UnreadableImage."""
    from PIL import Image, UnidentifiedImageError  # only where photos are read for the model

    side = settings.MEDIA_IMAGE_MAX_SIDE
    with attachment.file.open("rb") as stored:
        try:
            with Image.open(stored, formats=_IMAGE_FORMATS) as image:
                # The header gives the size before any pixel is decoded: refuse bombs here.
                if image.width * image.height > settings.MEDIA_IMAGE_MAX_PIXELS:
                    raise UnreadableImage(f"{image.width}x{image.height} pixels is over the limit")
                image.thumbnail((side, side))
                rgb = image.convert("RGB")
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
            raise UnreadableImage(f"not an allowed image ({type(exc).__name__})") from exc
    out = BytesIO()
    rgb.save(out, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def _backoff(attempt: int) -> float:
    return settings.MEDIA_RETRY_BACKOFF_SECONDS * 3 ** (attempt - 1)
