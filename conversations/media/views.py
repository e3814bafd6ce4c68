"""Staff-only access to the files customers sent (admin and the live inbox link here)."""

from __future__ import annotations

import uuid

from django.http import FileResponse, Http404, HttpRequest
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.access import staff_permission_required
from conversations.media.selectors import get_outbound_attachment_by_token, get_stored_attachment
from conversations.models import Attachment

# Shown in the browser; anything else is downloaded, so a crafted file cannot run as a page.
_INLINE_TYPES = {"image/jpeg", "image/png", "image/webp", "audio/ogg", "audio/mpeg", "audio/mp4", "video/mp4"}


def staff_attachment_url(attachment: Attachment) -> str:
    """The URL staff pages use for an attachment's file (image src, audio src, download link)."""
    return reverse("staff-attachment", args=[attachment.message.uid, attachment.pk])


@require_GET
@never_cache
@staff_permission_required("conversations.view_attachment")
def serve_attachment(request: HttpRequest, message_uid: uuid.UUID, attachment_id: int) -> FileResponse:
    attachment = get_stored_attachment(message_uid=message_uid, attachment_id=attachment_id)
    if attachment is None:
        raise Http404("no such attachment")
    is_inline = attachment.content_type in _INLINE_TYPES
    response = FileResponse(
        attachment.file.open("rb"),
        content_type=attachment.content_type if is_inline else "application/octet-stream",
        as_attachment=not is_inline,
        filename=attachment.file.name.rsplit("/", 1)[-1],
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
def serve_outbound_media(request: HttpRequest, token: str) -> FileResponse:
    """A file staff sent, for the provider that delivers it (and the simulator's phone): no login,
    the signed, expiring token in the URL is the permission."""
    attachment = get_outbound_attachment_by_token(token=token)
    if attachment is None:
        raise Http404("no such file")
    response = FileResponse(
        attachment.file.open("rb"),
        content_type=attachment.content_type,
        filename=attachment.original_filename or attachment.file.name.rsplit("/", 1)[-1],
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
