"""Messages across conversations for staff: find one by its words or the customer's number,
narrow by direction, status, channel and date, and go to its conversation (admin or live inbox)."""

from __future__ import annotations

from django.contrib import admin
from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils.html import format_html

from conversations.admin.conversation import ReadOnlyAdminMixin, delivery_ticks
from conversations.models import Message
from conversations.selectors.inbox import STAFF_ONLY_AUTHORS


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "customer", "direction", "author", "kind", "short_text", "delivery", "links"]
    list_filter = [
        "direction",
        "status",
        ("conversation__channel", admin.ChoicesFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
        "author",
    ]
    search_fields = ["text", "conversation__profile__phone_number"]
    search_help_text = "Words of the message, or the customer's number."
    list_select_related = ["conversation__profile__contact", "staff_user"]
    list_per_page = 50
    # COUNT(*) over every message is the slow part of a big table's page; the paginator's own
    # count of the filtered rows is enough.
    show_full_result_count = False
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    fields = [
        "conversation_link",
        "created_at",
        "direction",
        "author",
        "staff_user",
        "kind",
        "text",
        "status",
        "error_code",
        "error_title",
        "provider",
        "provider_message_id",
        "model",
        "input_tokens",
        "output_tokens",
    ]
    readonly_fields = fields

    @admin.display(description="Customer", ordering="conversation__profile__display_name")
    def customer(self, message: Message) -> str:
        profile = message.conversation.profile
        return f"{profile} ({profile.phone_number})" if profile.phone_number else str(profile)

    @admin.display(description="Text")
    def short_text(self, message: Message) -> str:
        return truncatechars(message.staff_label or message.text or f"[{message.kind}]", 80)

    @admin.display(description="Delivery")
    def delivery(self, message: Message) -> str:
        if message.direction != Message.Direction.OUTBOUND or message.author in STAFF_ONLY_AUTHORS:
            return ""
        return delivery_ticks(message.status)

    @admin.display(description="Conversation")
    def links(self, message: Message) -> str:
        return format_html(
            '<a href="{}">admin</a> · <a href="{}">live inbox</a>',
            reverse("admin:conversations_conversation_change", args=[message.conversation_id]),
            f"{reverse('live-inbox')}#conversation={message.conversation_id}&message={message.pk}",
        )

    @admin.display(description="Conversation")
    def conversation_link(self, message: Message) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:conversations_conversation_change", args=[message.conversation_id]),
            message.conversation,
        )
