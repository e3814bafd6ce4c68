"""Client profiles in the admin: staff correct names, company and email; each save is a staff edit."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.db.models import Count
from django.http import HttpRequest

from conversations.admin.conversation import ReadOnlyAdminMixin
from conversations.models import AuditEntry
from conversations.selectors.inbox import get_contact_cost
from conversations.services.profiles import STAFF_EDITABLE_FIELDS, update_profile_by_staff
from profiles.models import ClientProfile


class StaffEditInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The audit trail of the profile, so a staff edit shows as one (who, when, which fields)."""

    model = AuditEntry
    fk_name = "profile"
    extra = 0
    fields = ["created_at", "actor", "action", "detail"]
    readonly_fields = fields
    verbose_name = "change"
    verbose_name_plural = "Edits (audit log)"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("actor")


@admin.register(ClientProfile)
class ClientProfileAdmin(admin.ModelAdmin):
    list_display = ["__str__", "phone_number", "provider", "company", "email", "conversation_count", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["phone_number", "display_name", "first_name", "last_name", "email", "company", "external_id"]
    date_hierarchy = "created_at"
    fields = [
        "provider",
        "external_id",
        "phone_number",
        "display_name",
        *STAFF_EDITABLE_FIELDS,
        "model_cost",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "provider",
        "external_id",
        "phone_number",
        "display_name",
        "model_cost",
        "created_at",
        "updated_at",
    ]
    inlines = [StaffEditInline]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(conversation_total=Count("conversations"))

    @admin.display(description="Conversations", ordering="conversation_total")
    def conversation_count(self, profile: ClientProfile) -> int:
        return profile.conversation_total

    @admin.display(description="Model cost (all conversations)")
    def model_cost(self, profile: ClientProfile) -> str:
        return f"{get_contact_cost(profile_id=profile.pk):.4f} {settings.MODEL_PRICE_CURRENCY}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # profiles come from the providers, with the customer's first message

    def save_model(self, request: HttpRequest, obj: ClientProfile, form, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in STAFF_EDITABLE_FIELDS}
        update_profile_by_staff(profile_id=obj.pk, user=request.user, changes=changes)
