"""Django admin for staff: conversations with their messages, audit log, dedup gate (read-only).

List pages run a fixed number of queries: summaries come from correlated subqueries
(inbox_selectors.annotate_inbox_summary) and foreign keys from list_select_related.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest
from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from conversations.models import AuditEntry, Conversation, Message, ProcessedMessage, ToolCall, staff_name
from conversations.selectors.inbox import STAFF_ONLY_AUTHORS, annotate_inbox_summary
from conversations.services.quarantine import drop_quarantined, list_quarantined, retry_quarantined
from conversations.services.usage import get_month_spend

TICKS = {"pending": "🕓", "sending": "🕓", "unknown": "?", "sent": "✓", "delivered": "✓✓", "read": "✓✓ read"}


def delivery_ticks(status: str | None) -> str:
    if not status:
        return "—"
    return TICKS.get(status, status) if status != "failed" else "⚠ failed"


class ReadOnlyAdminMixin:
    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class MessageInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Message
    fk_name = "conversation"
    extra = 0
    ordering = ["created_at", "id"]
    fields = [
        "created_at",
        "direction",
        "author",
        "staff_user",
        "kind",
        "text",
        "delivery",
        "failure_reason",
        "sources",
        "agent_name",
        "cost",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("staff_user")

    @admin.display(description="Delivery")
    def delivery(self, message: Message) -> str:
        if message.direction != Message.Direction.OUTBOUND or message.author in STAFF_ONLY_AUTHORS:
            return ""
        return f"{delivery_ticks(message.status)} ({message.get_status_display()})"

    @admin.display(description="Failure reason")
    def failure_reason(self, message: Message) -> str:
        return " ".join(part for part in (message.error_code, message.error_title) if part)

    @admin.display(description="Sources")
    def sources(self, message: Message) -> str:
        """The knowledge base passages a bot reply cited (or was given, when it cited none)."""
        sources = message.knowledge_sources
        cited = [source for source in sources if source.get("cited")] or sources
        links = format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (
                    reverse("admin:knowledge_article_change", args=[source["article_id"]]),
                    " > ".join(part for part in (source.get("title"), source.get("heading")) if part),
                )
                for source in cited
            ),
        )
        if not links:
            return ""
        return links if any(source.get("cited") for source in sources) else format_html("given, not cited: {}", links)


class ToolCallInline(ReadOnlyAdminMixin, admin.TabularInline):
    """What the model called while answering (personal data: arguments and results)."""

    model = ToolCall
    extra = 0
    classes = ["collapse"]
    fields = ["created_at", "agent_name", "tool_name", "arguments", "status", "http_status", "latency_ms", "result"]
    readonly_fields = fields


@admin.register(ToolCall)
class ToolCallAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "conversation", "agent_name", "tool_name", "status", "http_status", "latency_ms"]
    list_filter = ["status", "tool_name", "agent_name"]
    list_select_related = ["conversation__profile__contact"]
    fields = [
        "created_at",
        "conversation",
        "message",
        "agent_name",
        "tool_name",
        "arguments",
        "status",
        "http_status",
        "latency_ms",
        "result",
        "is_truncated",
    ]
    readonly_fields = fields


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    # Fits a 1366 px screen: short columns, the preview cut, flags folded into the mode column.
    list_display = [
        "customer",
        "channel",
        "mode_and_holder",
        "last_message",
        "last_message_time",
        "unread",
        "delivery",
        "model_cost",
        "live_link",
    ]
    list_filter = ["channel", "mode", "status", "needs_human", "labels"]
    search_fields = [
        "profile__phone_number",
        "profile__display_name",
        "profile__contact__first_name",
        "profile__contact__last_name",
        "profile__contact__email",
        "profile__contact__company",
        "profile__external_id",
    ]
    date_hierarchy = "created_at"
    list_select_related = ["profile__contact", "assigned_to"]
    ordering = ["-updated_at"]
    fields = [
        "profile",
        "channel",
        "business_address",
        "status",
        "mode",
        "assigned_to",
        "taken_over_at",
        "needs_human",
        "resolved_at",
        "snoozed_until",
        "last_customer_message_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    inlines = [MessageInline, ToolCallInline]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        # Nothing here is editable (staff act in the live inbox): no Save buttons.
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "live_inbox_url": f"{reverse('live-inbox')}#conversation={object_id}",
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_queryset(self, request: HttpRequest):
        return annotate_inbox_summary(super().get_queryset(request), viewer_id=request.user.pk)

    def get_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return [*self.fields, "current_agent", "model_cost"]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return self.get_fields(request, obj)

    def changelist_view(self, request: HttpRequest, extra_context=None):
        spend = get_month_spend()
        cap = settings.BUDGET_MONTHLY_SPEND_CAP
        subtitle = f"Model cost this month: {spend:.2f} {settings.MODEL_PRICE_CURRENCY}"
        if cap is not None:
            subtitle += f" of a {cap} cap"
        return super().changelist_view(request, {"subtitle": subtitle, **(extra_context or {})})

    @admin.display(description="Model cost", ordering="cost")
    def model_cost(self, conversation: Conversation) -> str:
        return f"{conversation.cost:.4f} {settings.MODEL_PRICE_CURRENCY}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Customer", ordering="profile__display_name")
    def customer(self, conversation: Conversation) -> str:
        profile = conversation.profile
        return f"{profile} ({profile.phone_number})" if profile.phone_number else str(profile)

    @admin.display(description="Mode", ordering="mode")
    def mode_and_holder(self, conversation: Conversation) -> str:
        mode = f"Staff: {staff_name(conversation.assigned_to) or '?'}" if conversation.mode == "human" else "Bot"
        flags = [
            flag
            for flag, is_set in (
                ("⚑ needs a person", conversation.needs_human),
                ("resolved", conversation.resolved_at is not None),
                ("closed", conversation.status == Conversation.Status.CLOSED),
            )
            if is_set
        ]
        return " · ".join([mode, *flags])

    @admin.display(description="Last message")
    def last_message(self, conversation: Conversation) -> str:
        return truncatechars(conversation.last_message_preview or f"[{conversation.last_message_kind or 'none'}]", 60)

    @admin.display(description="")
    def live_link(self, conversation: Conversation) -> str:
        return format_html('<a href="{}#conversation={}">Open live</a>', reverse("live-inbox"), conversation.pk)

    @admin.display(description="Time", ordering="last_message_at")
    def last_message_time(self, conversation: Conversation):
        return conversation.last_message_at

    @admin.display(description="Unread", ordering="unread_count")
    def unread(self, conversation: Conversation) -> int:
        return conversation.unread_count

    @admin.display(description="Delivery")
    def delivery(self, conversation: Conversation) -> str:
        ticks = delivery_ticks(conversation.delivery_status)
        return f"{ticks}: {conversation.delivery_error}" if conversation.delivery_error else ticks


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "conversation", "profile", "contact", "detail"]
    list_filter = ["action"]
    list_select_related = ["actor", "conversation__profile__contact", "profile__contact", "contact"]
    search_fields = ["action", "actor__username"]
    date_hierarchy = "created_at"


class RecordingFilter(admin.SimpleListFilter):
    title = "recording"
    parameter_name = "recording"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("quarantined", "Quarantined"), ("waiting", "Waiting"), ("recorded", "Recorded")]

    def queryset(self, request: HttpRequest, queryset):
        if self.value() == "quarantined":
            return queryset.filter(pending__isnull=False, quarantined_at__isnull=False)
        if self.value() == "waiting":
            return queryset.filter(pending__isnull=False, quarantined_at__isnull=True)
        if self.value() == "recorded":
            return queryset.filter(pending__isnull=True)
        return queryset


@admin.register(ProcessedMessage)
class ProcessedMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The dedup gate: deleting a row would let a late provider retry in again. Staff retry or
    drop a delivery that could not be recorded (quarantined); nothing else changes here."""

    list_display = ["provider_message_id", "provider", "received_at", "recording", "record_error"]
    list_filter = [RecordingFilter, "provider"]
    search_fields = ["provider_message_id"]
    date_hierarchy = "received_at"
    actions = ["retry_recording", "drop_stored_message"]

    @admin.display(description="Recording")
    def recording(self, processed: ProcessedMessage) -> str:
        if processed.pending is None:
            return "recorded"
        if processed.quarantined_at:
            return f"⚠ quarantined after {processed.record_attempts} attempts"
        return f"waiting ({processed.record_attempts} failed)" if processed.record_attempts else "waiting"

    def changelist_view(self, request: HttpRequest, extra_context=None):
        if count := list_quarantined().count():
            messages.warning(
                request,
                f"{count} accepted deliveries could not be recorded and are quarantined: filter on "
                "Recording → Quarantined, then retry them (after a fix) or drop their stored message.",
            )
        return super().changelist_view(request, extra_context)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("conversations.change_processedmessage")

    @admin.action(description="Retry recording the quarantined deliveries", permissions=["retry"])
    def retry_recording(self, request: HttpRequest, queryset) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        recorded = retry_quarantined(processed_ids=ids, actor=request.user)
        self.message_user(request, f"{recorded} recorded; any still failing are quarantined again after their tries.")

    @admin.action(description="Drop the stored message of the quarantined deliveries", permissions=["retry"])
    def drop_stored_message(self, request: HttpRequest, queryset) -> None:
        dropped = drop_quarantined(processed_ids=list(queryset.values_list("pk", flat=True)), actor=request.user)
        self.message_user(request, f"{dropped} stored messages dropped; their dedup rows stay.")
