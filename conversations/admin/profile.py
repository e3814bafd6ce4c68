"""Contacts and their channel identities in the admin: staff correct a person's names, company
and email (each save is an audited staff edit), merge contacts that are one person and split an
identity that is not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from conversations.admin.conversation import ReadOnlyAdminMixin
from conversations.models import AuditEntry
from conversations.selectors.contacts import list_merge_suggestions
from conversations.selectors.inbox import get_contact_cost
from conversations.services.contacts import merge_contacts, split_identity
from conversations.services.profiles import STAFF_EDITABLE_FIELDS, update_contact_by_staff
from profiles.models import ClientProfile, Contact


class StaffEditInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The audit trail of the contact: staff edits, merges, splits, consent (who, when, what)."""

    model = AuditEntry
    fk_name = "contact"
    extra = 0
    fields = ["created_at", "actor", "action", "detail"]
    readonly_fields = fields
    verbose_name = "change"
    verbose_name_plural = "Changes (audit log)"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("actor")


class IdentityInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ClientProfile
    fk_name = "contact"
    extra = 0
    fields = ["identity", "provider", "external_id", "phone_number", "display_name", "created_at"]
    readonly_fields = fields
    verbose_name_plural = "Channel identities (split one from its page)"

    @admin.display(description="Identity")
    def identity(self, profile: ClientProfile) -> str:
        url = reverse("admin:profiles_clientprofile_change", args=[profile.pk])
        return format_html('<a href="{}">#{}</a>', url, profile.pk)


@admin.action(description="Merge the selected contacts into the oldest of them", permissions=["change"])
def merge_selected_contacts(modeladmin: ContactAdmin, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
    ids = sorted(queryset.values_list("pk", flat=True))
    if len(ids) < 2:
        modeladmin.message_user(request, "Select at least two contacts to merge.", messages.WARNING)
        return
    target_id, *source_ids = ids
    for source_id in source_ids:
        merge_contacts(target_id=target_id, source_id=source_id, user=request.user)
    modeladmin.message_user(
        request, f"Merged {len(source_ids)} contact(s) into contact #{target_id}.", messages.SUCCESS
    )


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["__str__", "phone_number", "company", "email", "identity_count", "updated_at"]
    search_fields = [
        "first_name",
        "last_name",
        "email",
        "company",
        "phone_number",
        "identities__phone_number",
        "identities__display_name",
        "identities__external_id",
    ]
    date_hierarchy = "created_at"
    fields = [
        "phone_number",
        *STAFF_EDITABLE_FIELDS,
        "suggested_matches",
        "details_declined_at",
        "opted_out_at",
        "opted_in_at",
        "model_cost",
        "created_at",
        "updated_at",
    ]
    # Staff edit the person's details only; the join number and consent come from the customer.
    readonly_fields = [name for name in fields if name not in STAFF_EDITABLE_FIELDS]
    inlines = [IdentityInline, StaffEditInline]
    actions = [merge_selected_contacts]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(identity_total=Count("identities"))

    @admin.display(description="Identities", ordering="identity_total")
    def identity_count(self, contact: Contact) -> int:
        return contact.identity_total

    @admin.display(description="Model cost (all conversations, every channel)")
    def model_cost(self, contact: Contact) -> str:
        return f"{get_contact_cost(contact_id=contact.pk):.4f} {settings.MODEL_PRICE_CURRENCY}"

    @admin.display(description="Maybe the same person (same email or name; never merged by itself)")
    def suggested_matches(self, contact: Contact) -> str:
        suggestions = list_merge_suggestions(contact=contact)
        if not suggestions:
            return "—"
        changelist = reverse("admin:profiles_contact_changelist")
        return format_html_join(
            mark_safe("<br>"),
            '<a href="{}">{}</a> (same {}) · <a href="{}?id__in={},{}">compare and merge</a>',
            (
                (
                    reverse("admin:profiles_contact_change", args=[s.contact.pk]),
                    str(s.contact),
                    s.reason,
                    changelist,
                    contact.pk,
                    s.contact.pk,
                )
                for s in suggestions
            ),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # contacts come with the customer's first message

    def save_model(self, request: HttpRequest, obj: Contact, form, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in STAFF_EDITABLE_FIELDS}
        update_contact_by_staff(contact_id=obj.pk, user=request.user, changes=changes)


@admin.action(description="Split the selected identities from their contact", permissions=["change"])
def split_selected_identities(
    modeladmin: ClientProfileAdmin, request: HttpRequest, queryset: QuerySet[ClientProfile]
) -> None:
    for identity_id in queryset.values_list("pk", flat=True):
        try:
            contact = split_identity(identity_id=identity_id, user=request.user)
        except ValidationError as exc:
            modeladmin.message_user(request, f"Identity #{identity_id}: {' '.join(exc.messages)}", messages.WARNING)
        else:
            modeladmin.message_user(request, f"Identity #{identity_id} is now contact #{contact.pk}.", messages.SUCCESS)


@admin.register(ClientProfile)
class ClientProfileAdmin(admin.ModelAdmin):
    """Channel identities are what the providers told us: read-only; the person is the contact."""

    list_display = ["__str__", "contact_link", "phone_number", "provider", "conversation_count", "updated_at"]
    list_filter = ["provider"]
    list_select_related = ["contact"]
    search_fields = [
        "phone_number",
        "display_name",
        "external_id",
        "contact__first_name",
        "contact__last_name",
        "contact__email",
        "contact__company",
    ]
    date_hierarchy = "created_at"
    fields = ["contact_link", "provider", "external_id", "phone_number", "display_name", "created_at", "updated_at"]
    readonly_fields = fields
    # Typed wide: the GDPR admin extends this list with actions of its own subclass.
    actions: Sequence[Any] = [split_selected_identities]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(conversation_total=Count("conversations"))

    @admin.display(description="Contact", ordering="contact")
    def contact_link(self, profile: ClientProfile) -> str:
        url = reverse("admin:profiles_contact_change", args=[profile.contact_id])
        return format_html('<a href="{}">{}</a>', url, profile.contact)

    @admin.display(description="Conversations", ordering="conversation_total")
    def conversation_count(self, profile: ClientProfile) -> int:
        return profile.conversation_total

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # identities come from the providers, with the customer's first message
