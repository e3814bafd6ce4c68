"""The JSON shapes the live inbox reads, shared by its API and its websocket events.

Every string here is customer- or model-supplied data: the page renders it as text only.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from conversations.models import Attachment, CannedResponse, Channel, Conversation, Label, Message, ToolCall, staff_name
from profiles.models import ClientProfile, Contact


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


class ConversationSerializer(serializers.ModelSerializer):
    """A row of the inbox list; needs `selectors.inbox.list_conversations_for_inbox` (or
    `get_conversation_for_inbox`).

    The fields below describe the row (the API schema); `to_representation` builds it in plain
    Python: DRF's per-field calls for 200 rows of ~30 fields with three nested objects were most of a
    list page's time (bench/inbox.py)."""

    channel_label = serializers.CharField(source="get_channel_display")
    holder = StaffSerializer(source="assigned_to", allow_null=True)
    profile = ProfileSerializer()
    contact = serializers.SerializerMethodField()
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
    currency = serializers.SerializerMethodField()
    agent = serializers.SerializerMethodField()
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

    def get_currency(self, conversation: Conversation) -> str:
        return settings.MODEL_PRICE_CURRENCY

    def get_agent(self, conversation: Conversation) -> str:
        return conversation.current_agent.name if conversation.current_agent else ""

    def get_contact(self, conversation: Conversation) -> dict:
        """The person behind the row: the inbox shows each contact once, with a badge per channel."""
        contact = conversation.profile.contact
        return {
            "id": contact.pk,
            # The same name whichever identity's conversation the row shows.
            "name": contact.full_name
            or getattr(conversation, "contact_display_name", None)
            or str(conversation.profile),
            "is_opted_out": contact.opted_out_at is not None,
            "channels": [
                {"channel": channel, "label": _CHANNEL_LABELS[channel]}
                for channel in getattr(conversation, "contact_channels", [])
            ],
        }

    def to_representation(self, conversation: Conversation) -> dict:
        profile = conversation.profile
        holder = conversation.assigned_to
        return {
            "id": conversation.pk,
            "channel": conversation.channel,
            "channel_label": _CHANNEL_LABELS[conversation.channel],
            "status": conversation.status,
            "mode": conversation.mode,
            "needs_human": conversation.needs_human,
            "holder": None if holder is None else {"id": holder.pk, "name": staff_name(holder)},
            "taken_over_at": _time(conversation.taken_over_at),
            "profile": {
                "id": profile.pk,
                "contact_id": profile.contact_id,
                "name": str(profile),
                "provider": profile.provider,
                "provider_label": profile.get_provider_display(),
                "phone_number": profile.phone_number,
                "display_name": profile.display_name,
                "updated_at": _time(profile.updated_at),
            },
            "contact": self.get_contact(conversation),
            "is_window_open": conversation.is_window_open,
            "last_customer_message_at": _time(conversation.last_customer_message_at),
            "last_message_preview": conversation.last_message_preview,  # type: ignore[attr-defined]
            "last_message_kind": conversation.last_message_kind,  # type: ignore[attr-defined]
            "last_message_author": conversation.last_message_author,  # type: ignore[attr-defined]
            "last_message_at": _time(conversation.last_message_at),  # type: ignore[attr-defined]
            "delivery_status": conversation.delivery_status,  # type: ignore[attr-defined]
            "delivery_error": conversation.delivery_error,  # type: ignore[attr-defined]
            "unread_count": conversation.unread_count,  # type: ignore[attr-defined]
            "cost": _money(conversation.cost),  # type: ignore[attr-defined]
            "contact_cost": _money(conversation.contact_cost),  # type: ignore[attr-defined]
            "currency": settings.MODEL_PRICE_CURRENCY,
            "agent": self.get_agent(conversation),
            "resolved_at": _time(conversation.resolved_at),
            "snoozed_until": _time(conversation.snoozed_until),
            "labels": conversation.inbox_labels,  # type: ignore[attr-defined]
            "updated_at": _time(conversation.updated_at),
        }


_CHANNEL_LABELS = dict(Channel.choices)
# DRF's own formats (ISO 8601 in the current time zone; a fixed-point string), field objects made once.
_DATETIME = serializers.DateTimeField()
_MONEY = serializers.DecimalField(max_digits=14, decimal_places=6)


def _time(value: datetime | None) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)


def _money(value: Decimal) -> str:
    return _MONEY.to_representation(value)
