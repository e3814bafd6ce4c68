"""Media in Django admin: an audio player or a thumbnail beside each attachment.

`AttachmentInline` is meant for the Message admin (issue 6); `Attachment` also has its own
read-only list.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from conversations.models import Attachment
from conversations.staff_media import staff_attachment_url


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


class _PreviewMixin:
    @admin.display(description="Media")
    def preview(self, attachment: Attachment) -> str:
        return media_preview(attachment)


class AttachmentInline(_PreviewMixin, admin.TabularInline):
    model = Attachment
    fields = _FIELDS
    readonly_fields = _FIELDS
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Attachment)
class AttachmentAdmin(_PreviewMixin, admin.ModelAdmin):
    list_display = ("id", "message", "content_type", "status", "created_at")
    list_filter = ("status", "content_type")
    list_select_related = ("message",)
    fields = ("message", *_FIELDS, "sha256", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False
