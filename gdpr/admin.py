"""Admin actions for data officers: export (downloads) and erase (after a confirmation page).

Only users with `gdpr.export_subject` / `gdpr.erase_subject` (the "Data officer" role) see or
can run them (Django's action permissions, checked again inside each action). Added to the
client profile admin below; the erasure records and remote deletions are registered here too,
read-only, for users with their view permission.
"""

from __future__ import annotations

import io
from typing import Any, TypeGuard

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from conversations.admin import profile as profile_admin
from gdpr.erasure import erase_subject, plan_erasure
from gdpr.export import export_subject
from gdpr.models import ErasureRecord, RemoteDeletion
from gdpr.subjects import subject_of_profile
from profiles.models import ClientProfile

EXPORT = "gdpr.export_subject"
ERASE = "gdpr.erase_subject"
_CONTENT_TYPES = {"json": "application/json", "zip": "application/zip"}


def _may(user: User | AnonymousUser, permission: str) -> TypeGuard[User]:
    return user.is_active and user.has_perm(permission)


@admin.action(description="Export personal data (GDPR)", permissions=["export_subject"])
def export_personal_data(
    modeladmin: ClientProfileAdmin, request: HttpRequest, queryset: QuerySet[ClientProfile]
) -> HttpResponse | None:
    if not _may(request.user, EXPORT):
        raise PermissionDenied
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one profile to export.", messages.WARNING)
        return None
    profile = queryset.get()
    subject = subject_of_profile(profile=profile)
    fmt = request.POST.get("format")
    if request.POST.get("post") != "yes" or fmt not in _CONTENT_TYPES:
        return _confirmation(modeladmin, request, queryset, "admin/gdpr/gdpr_export_confirm.html", {})
    buffer = io.BytesIO()
    export_subject(subject=subject, out=buffer, fmt=fmt, actor=request.user)
    response = HttpResponse(buffer.getvalue(), content_type=_CONTENT_TYPES[fmt])
    # The file name carries no personal data.
    response["Content-Disposition"] = f'attachment; filename="gdpr-export-profile-{profile.pk}.{fmt}"'
    return response


@admin.action(description="Erase personal data (GDPR, cannot be undone)", permissions=["erase_subject"])
def erase_personal_data(
    modeladmin: ClientProfileAdmin, request: HttpRequest, queryset: QuerySet[ClientProfile]
) -> HttpResponse | None:
    if not _may(request.user, ERASE):
        raise PermissionDenied
    # One subject per person: identities of one contact are erased together.
    profiles = list({profile.contact_id: profile for profile in queryset}.values())
    if request.POST.get("post") != "yes":
        plans = [plan_erasure(subject=subject_of_profile(profile=profile)) for profile in profiles]
        return _confirmation(modeladmin, request, queryset, "admin/gdpr/gdpr_erase_confirm.html", {"plans": plans})
    records = [erase_subject(subject=subject_of_profile(profile=profile), actor=request.user) for profile in profiles]
    pending = RemoteDeletion.objects.filter(erasure__in=records, status=RemoteDeletion.Status.PENDING).count()
    modeladmin.message_user(
        request,
        f"Erased {len(records)} profile(s): erasure record(s) {', '.join(f'#{r.pk}' for r in records)}."
        + (f" {pending} remote deletion(s) will be retried until the processor accepts them." if pending else ""),
        messages.SUCCESS,
    )
    return None


def _confirmation(
    modeladmin: ClientProfileAdmin,
    request: HttpRequest,
    queryset: QuerySet[ClientProfile],
    template: str,
    extra: dict[str, Any],
) -> TemplateResponse:
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Are you sure?",
        "opts": modeladmin.model._meta,
        "queryset": queryset,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action": request.POST.get("action", ""),
        **extra,
    }
    return TemplateResponse(request, template, context)


# The profile admin belongs to the back-office (conversations); this app sits above it and
# extends it with the data officers' actions, so no lower app imports the GDPR code.
admin.site.unregister(ClientProfile)


@admin.register(ClientProfile)
class ClientProfileAdmin(profile_admin.ClientProfileAdmin):
    """The back-office profile admin, plus export and erase for data officers."""

    actions = [*profile_admin.ClientProfileAdmin.actions, export_personal_data, erase_personal_data]

    def has_export_subject_permission(self, request: HttpRequest) -> bool:
        return _may(request.user, EXPORT)

    def has_erase_subject_permission(self, request: HttpRequest) -> bool:
        return _may(request.user, ERASE)


class _DataOfficerReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(ErasureRecord)
class ErasureRecordAdmin(_DataOfficerReadOnly):
    list_display = ("pk", "performed_at", "performed_by", "performed_by_label", "identifier_kind", "counts")


@admin.register(RemoteDeletion)
class RemoteDeletionAdmin(_DataOfficerReadOnly):
    list_display = (
        "erasure",
        "origin",
        "processor",
        "kind",
        "remote_id",
        "status",
        "attempts",
        "last_error",
        "completed_at",
    )
    list_filter = ("status", "origin", "processor", "kind")
