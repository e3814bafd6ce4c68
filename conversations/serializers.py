"""The JSON shapes the live inbox reads, shared by its API and its websocket events.

Every string here is customer- or model-supplied data: the page renders it as text only.
"""

from __future__ import annotations

import re

from django.urls import reverse
from rest_framework import serializers

from conversations.models import Attachment, CannedResponse, Conversation, Label, Message, staff_name
from profiles.models import ClientProfile


class StaffSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.SerializerMethodField()

    def get_name(self, user) -> str:
        return staff_name(user)


class LabelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Label
        fields = ["id", "name", "color"]


class CannedResponseSerializer(serializers.ModelSerializer):
    class Meta:
        model = CannedResponse
        fields = ["id", "shortcut", "text"]


class AttachmentSerializer(serializers.ModelSerializer):
    """A file of a message as staff pages show it: a thumbnail, a player or a download link."""

    url = serializers.SerializerMethodField()
    kind = serializers.SerializerMethodField()
    filename = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = ["id", "url", "kind", "content_type", "filename", "size_bytes", "caption", "transcript", "status"]

    def get_url(self, attachment: Attachment) -> str | None:
        if attachment.status != Attachment.Status.STORED:
            return None
        return reverse("staff-attachment", args=[attachment.message.uid, attachment.pk])

    def get_kind(self, attachment: Attachment) -> str:
        major = attachment.content_type.split("/", 1)[0]
        return major if major in ("image", "audio", "video") else "document"

    def get_filename(self, attachment: Attachment) -> str:
        return attachment.original_filename or (attachment.file.name.rsplit("/", 1)[-1] if attachment.file else "")


_COORDINATES = re.compile(r"\((-?\d{1,2}(?:\.\d+)?), (-?\d{1,3}(?:\.\d+)?)\)$")


class MessageSerializer(serializers.ModelSerializer):
    staff_name = serializers.SerializerMethodField()
    attachments = AttachmentSerializer(many=True, read_only=True)
    map_url = serializers.SerializerMethodField()
    # The knowledge base passages a bot reply used: for staff, never shown to the customer.
    sources = serializers.JSONField(source="knowledge_sources", read_only=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "conversation_id",
            "direction",
            "author",
            "staff_name",
            "kind",
            "text",
            "staff_label",
            "template",
            "status",
            "error_code",
            "error_title",
            "sources",
            "attachments",
            "map_url",
            "created_at",
        ]

    def get_staff_name(self, message: Message) -> str:
        return staff_name(message.staff_user)

    def get_map_url(self, message: Message) -> str | None:
        """A map of a shared location (its text ends with the coordinates, as recorded)."""
        if message.kind != Message.Kind.LOCATION:
            return None
        found = _COORDINATES.search(message.text)
        if found is None:
            return None
        latitude, longitude = found.groups()
        return f"https://www.openstreetmap.org/?mlat={latitude}&mlon={longitude}#map=16/{latitude}/{longitude}"


class ProfileSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="__str__")

    class Meta:
        model = ClientProfile
        fields = [
            "id",
            "name",
            "provider",
            "phone_number",
            "display_name",
            "first_name",
            "last_name",
            "company",
            "email",
            "updated_at",
        ]


class ConversationSerializer(serializers.ModelSerializer):
    """A row of the inbox list; needs `inbox_selectors.annotate_inbox_summary`."""

    channel_label = serializers.CharField(source="get_channel_display")
    holder = StaffSerializer(source="assigned_to", allow_null=True)
    profile = ProfileSerializer()
    is_window_open = serializers.BooleanField()
    last_message_preview = serializers.CharField(allow_null=True)
    last_message_kind = serializers.CharField(allow_null=True)
    last_message_author = serializers.CharField(allow_null=True)
    last_message_at = serializers.DateTimeField(allow_null=True)
    delivery_status = serializers.CharField(allow_null=True)
    delivery_error = serializers.CharField(allow_null=True)
    unread_count = serializers.IntegerField()
    labels = LabelSerializer(many=True, read_only=True)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "channel",
            "channel_label",
            "status",
            "mode",
            "needs_human",
            "holder",
            "taken_over_at",
            "profile",
            "is_window_open",
            "last_customer_message_at",
            "last_message_preview",
            "last_message_kind",
            "last_message_author",
            "last_message_at",
            "delivery_status",
            "delivery_error",
            "unread_count",
            "resolved_at",
            "snoozed_until",
            "labels",
            "updated_at",
        ]
