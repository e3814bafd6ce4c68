"""The JSON shapes the live inbox reads, shared by its API and its websocket events.

Every string here is customer- or model-supplied data: the page renders it as text only.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from conversations.models import (
    Attachment,
    CannedResponse,
    Channel,
    Conversation,
    Label,
    Message,
    ToolCall,
    is_window_open,
    staff_name,
)
from profiles.models import ClientProfile, Contact, Provider, identity_name, person_name


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
    agent = serializers.CharField(source="agent_name", read_only=True)
    # The function calls made while writing a bot reply: give `tool_calls` ({reply id: [ToolCall]},
    # inbox_selectors.list_tool_calls_for_replies) in the serializer's context.
    tool_calls = serializers.SerializerMethodField()

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
            "agent",
            "cost",
            "tool_calls",
            "attachments",
            "map_url",
            "created_at",
        ]

    def get_staff_name(self, message: Message) -> str:
        return staff_name(message.staff_user)

    def get_tool_calls(self, message: Message) -> list[dict]:
        return ToolCallSerializer(self.context.get("tool_calls", {}).get(message.pk, []), many=True).data

    def get_map_url(self, message: Message) -> str | None:
        """A map of a shared location (its text ends with the coordinates, as recorded)."""
        if message.kind != Message.Kind.LOCATION:
            return None
        found = _COORDINATES.search(message.text)
        if found is None:
            return None
        latitude, longitude = found.groups()
        return f"https://www.openstreetmap.org/?mlat={latitude}&mlon={longitude}#map=16/{latitude}/{longitude}"


class ToolCallSerializer(serializers.ModelSerializer):
    class Meta:
        model = ToolCall
        fields = ["id", "agent_name", "tool_name", "arguments", "status", "http_status", "latency_ms", "result"]


class ProfileSerializer(serializers.ModelSerializer):
    """A channel identity: how one provider knows the contact."""

    name = serializers.CharField(source="__str__")
    provider_label = serializers.CharField(source="get_provider_display")

    class Meta:
        model = ClientProfile
        fields = [
            "id",
            "contact_id",
            "name",
            "provider",
            "provider_label",
            "phone_number",
            "display_name",
            "updated_at",
        ]


class ContactSerializer(serializers.ModelSerializer):
    """The person's details (staff edit them; the model records what the customer says)."""

    name = serializers.CharField(source="__str__")
    is_opted_out = serializers.SerializerMethodField()

    class Meta:
        model = Contact
        fields = [
            "id",
            "name",
            "phone_number",
            "first_name",
            "last_name",
            "company",
            "email",
            "is_opted_out",
            "updated_at",
        ]

    def get_is_opted_out(self, contact: Contact) -> bool:
        return contact.opted_out_at is not None


class ContactConversationSerializer(serializers.ModelSerializer):
    """One of a contact's conversations, as the side panel lists them."""

    channel_label = serializers.CharField(source="get_channel_display")
    last_message_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        model = Conversation
        fields = ["id", "channel", "channel_label", "status", "mode", "last_message_at", "created_at", "updated_at"]


class SuggestionSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="contact.pk")
    name = serializers.CharField(source="contact.__str__")
    reason = serializers.CharField()


class ContactDetailSerializer(ContactSerializer):
    """A contact with every identity, every conversation and the contacts it may be (suggested);
    needs `selectors.contacts.get_contact_for_inbox`."""

    identities = ProfileSerializer(many=True)
    conversations = ContactConversationSerializer(source="inbox_conversations", many=True)
    suggestions = SuggestionSerializer(source="merge_suggestions", many=True)

    class Meta(ContactSerializer.Meta):
        fields = [*ContactSerializer.Meta.fields, "identities", "conversations", "suggestions"]


class ChannelBadgeSerializer(serializers.Serializer):
    channel = serializers.CharField()
    label = serializers.CharField()


class InboxContactSerializer(serializers.Serializer):
    """The person behind an inbox row: the inbox shows each contact once, under the same name
    whichever identity's conversation the row shows, with a badge per channel."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    is_opted_out = serializers.BooleanField()
    channels = ChannelBadgeSerializer(many=True)


class ConversationSerializer(serializers.ModelSerializer):
    """A row of the inbox list: give it a row of `selectors.inbox.list_conversations_for_inbox`
    (or `get_conversation_for_inbox`), plain values.

    The fields below describe the row (the API schema) as a conversation model would give it;
    `to_representation` builds the same row in plain Python from the selector's values: DRF's
    per-field calls for 200 rows of ~30 fields with three nested objects were most of a list
    page's time (bench/inbox.py)."""

    channel_label = serializers.CharField(source="get_channel_display")
    holder = StaffSerializer(source="assigned_to", allow_null=True)
    profile = ProfileSerializer()
    contact = InboxContactSerializer()
    is_window_open = serializers.BooleanField()
    last_message_preview = serializers.CharField(allow_null=True)
    last_message_kind = serializers.CharField(allow_null=True)
    last_message_author = serializers.CharField(allow_null=True)
    last_message_at = serializers.DateTimeField(allow_null=True)
    delivery_status = serializers.CharField(allow_null=True)
    delivery_error = serializers.CharField(allow_null=True)
    unread_count = serializers.IntegerField()
    # What the model cost for this conversation and for its contact, in `currency`; the agent
    # answering it now.
    cost = serializers.DecimalField(max_digits=14, decimal_places=6)
    contact_cost = serializers.DecimalField(max_digits=14, decimal_places=6)
    currency = serializers.CharField()
    agent = serializers.CharField()
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
            "contact",
            "is_window_open",
            "last_customer_message_at",
            "last_message_preview",
            "last_message_kind",
            "last_message_author",
            "last_message_at",
            "delivery_status",
            "delivery_error",
            "unread_count",
            "cost",
            "contact_cost",
            "currency",
            "agent",
            "resolved_at",
            "snoozed_until",
            "labels",
            "updated_at",
        ]

    def to_representation(self, row: dict[str, Any]) -> dict:
        holder_id = row["assigned_to_id"]
        contact_name = person_name(row["profile__contact__first_name"], row["profile__contact__last_name"])
        profile_name = identity_name(
            full_name=contact_name,
            display_name=row["profile__display_name"],
            phone_number=row["profile__phone_number"],
            external_id=row["profile__external_id"],
        )
        return {
            "id": row["id"],
            "channel": row["channel"],
            "channel_label": _CHANNEL_LABELS[row["channel"]],
            "status": row["status"],
            "mode": row["mode"],
            "needs_human": row["needs_human"],
            "holder": None if holder_id is None else {"id": holder_id, "name": _holder_name(row)},
            "taken_over_at": _time(row["taken_over_at"]),
            "profile": {
                "id": row["profile_id"],
                "contact_id": row["profile__contact_id"],
                "name": profile_name,
                "provider": row["profile__provider"],
                "provider_label": _PROVIDER_LABELS.get(row["profile__provider"], row["profile__provider"]),
                "phone_number": row["profile__phone_number"],
                "display_name": row["profile__display_name"],
                "updated_at": _time(row["profile__updated_at"]),
            },
            "contact": {
                "id": row["profile__contact_id"],
                "name": contact_name or row["contact_display_name"] or profile_name,
                "is_opted_out": row["profile__contact__opted_out_at"] is not None,
                "channels": [
                    {"channel": channel, "label": _CHANNEL_LABELS[channel]} for channel in row["contact_channels"]
                ],
            },
            "is_window_open": is_window_open(
                channel=row["channel"], last_customer_message_at=row["last_customer_message_at"]
            ),
            "last_customer_message_at": _time(row["last_customer_message_at"]),
            "last_message_preview": row["last_message_preview"],
            "last_message_kind": row["last_message_kind"],
            "last_message_author": row["last_message_author"],
            "last_message_at": _time(row["last_message_at"]),
            "delivery_status": row["delivery_status"],
            "delivery_error": row["delivery_error"],
            "unread_count": row["unread_count"],
            "cost": _money(row["cost"]),
            "contact_cost": _money(row["contact_cost"]),
            "currency": settings.MODEL_PRICE_CURRENCY,
            "agent": row["current_agent__name"] or "",
            "resolved_at": _time(row["resolved_at"]),
            "snoozed_until": _time(row["snoozed_until"]),
            "labels": row["labels"],
            "updated_at": _time(row["updated_at"]),
        }


_CHANNEL_LABELS = dict(Channel.choices)
_PROVIDER_LABELS = dict(Provider.choices)
# DRF's own formats (ISO 8601 in the current time zone; a fixed-point string), field objects made once.
_DATETIME = serializers.DateTimeField()
_MONEY = serializers.DecimalField(max_digits=14, decimal_places=6)


def _time(value: datetime | None) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)


def _money(value: Decimal) -> str:
    return _MONEY.to_representation(value)


def _holder_name(row: dict[str, Any]) -> str:
    # staff_name() of the row's holder: the default User's full name, else its login.
    return person_name(row["assigned_to__first_name"], row["assigned_to__last_name"]) or row["assigned_to__username"]
