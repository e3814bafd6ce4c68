"""Media in Django admin: the read-only Attachment list with an audio player or a thumbnail."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from conversations.media.views import staff_attachment_url
from conversations.models import Attachment


def media_preview(attachment: Attachment) -> str:
    """HTML for staff: a player for audio, a thumbnail for images, else a download link."""
    if attachment.status != Attachment.Status.STORED or not attachment.file:
        return attachment.get_status_display() + (f": {attachment.error}" if attachment.error else "")
    url = staff_attachment_url(attachment)
    if attachment.content_type.startswith("audio/"):
        return format_html('<audio controls preload="none" src="{}"></audio>', url)
    if attachment.content_type.startswith("image/"):
        return format_html('<a href="{}"><img src="{}" style="max-height:160px" alt="photo"></a>', url, url)
    return format_html('<a href="{}">Download ({})</a>', url, attachment.content_type or "file")


_FIELDS = ("preview", "caption", "transcript", "content_type", "size_bytes", "original_filename", "status", "error")


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ("id", "message", "content_type", "status", "created_at")
    list_filter = ("status", "content_type")
    list_select_related = ("message",)
    fields = ("message", *_FIELDS, "sha256", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Media")
    def preview(self, attachment: Attachment) -> str:
        return media_preview(attachment)
