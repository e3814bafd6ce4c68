"""Reads for staff access to message media."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse

from conversations.models import Attachment, Message


def get_stored_attachment(*, message_uid: uuid.UUID, attachment_id: int) -> Attachment | None:
    """A downloaded attachment, addressed by its message's random uid (ids alone are guessable)."""
    return (
        Attachment.objects.select_related("message")
        .filter(pk=attachment_id, message__uid=message_uid, status=Attachment.Status.STORED)
        .exclude(file="")
        .first()
    )


# A file staff send is fetched by the provider (Meta and Twilio take a link, not an upload) from
# an unguessable, expiring URL: the signed attachment id.
_OUTBOUND_SALT = "conversations.media.outbound"
OUTBOUND_URL_MAX_AGE = timedelta(days=7)


def get_outbound_media_url(*, attachment: Attachment) -> str:
    """The absolute URL a provider fetches a staff file from (PUBLIC_BASE_URL, else this host)."""
    token = signing.dumps(attachment.pk, salt=_OUTBOUND_SALT, compress=True)
    base = settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000"
    return f"{base}{reverse('outbound-media', args=[token])}"


def get_outbound_attachment_by_token(*, token: str) -> Attachment | None:
    """The stored file of a staff message a signed token names, while the token is fresh."""
    try:
        attachment_id = signing.loads(token, salt=_OUTBOUND_SALT, max_age=OUTBOUND_URL_MAX_AGE)
    except signing.BadSignature:
        return None
    return (
        Attachment.objects.filter(
            pk=attachment_id,
            status=Attachment.Status.STORED,
            message__direction=Message.Direction.OUTBOUND,
            message__author=Message.Author.STAFF,
        )
        .exclude(file="")
        .first()
    )


def get_outbound_attachment(*, message: Message) -> Attachment | None:
    """The file a staff message sends, if it has one."""
    if message.author != Message.Author.STAFF or message.kind == Message.Kind.TEXT:
        return None
    return message.attachments.exclude(file="").first()
