"""Administrators' pages: the security audit trail, and users with their roles and second factor."""

from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from accounts.models import SecurityEvent
from accounts.two_factor import has_two_factor, issue_setup_code, reset_two_factor

User = get_user_model()


@admin.register(SecurityEvent)
class SecurityEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "actor_label", "ip_address", "target", "detail"]
    list_filter = ["action", ("actor", admin.RelatedOnlyFieldListFilter), "created_at"]
    search_fields = ["actor_label", "ip_address", "target"]
    date_hierarchy = "created_at"
    list_select_related = ["actor"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # only the retention purge deletes events


admin.site.unregister(User)


def _may_manage(request: HttpRequest, user: Any) -> bool:
    return user is None or not user.is_superuser or request.user.is_superuser


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    """Django's user admin; only a superuser may grant superuser or single permissions, or change
    a superuser (password, second factor), so an Administrator manages roles without being able
    to give anyone (or themselves) everything."""

    list_display = ["username", "email", "first_name", "last_name", "is_staff", "is_active", "roles", "two_factor"]
    list_filter = ["is_staff", "is_superuser", "is_active", "groups"]
    actions = ["reset_second_factor", "issue_setup_code"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).prefetch_related("groups")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and _may_manage(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and _may_manage(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += ["is_superuser", "user_permissions"]
        return readonly

    @admin.display(description="Roles")
    def roles(self, user: Any) -> str:
        return ", ".join(group.name for group in user.groups.all())

    @admin.display(description="Two-factor", boolean=True)
    def two_factor(self, user: Any) -> bool:
        return has_two_factor(user)

    @admin.action(description="Reset two-factor login (the user sets it up again)", permissions=["change"])
    def reset_second_factor(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        users = [user for user in queryset if _may_manage(request, user)]
        for user in users:
            reset_two_factor(user=user, by=request.user)
        self.message_user(request, f"Two-factor login reset for {len(users)} user(s).", messages.SUCCESS)
        self._issue_setup_codes(request, users)

    @admin.action(description="Issue a two-factor set-up code", permissions=["change"])
    def issue_setup_code(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._issue_setup_codes(request, [user for user in queryset if _may_manage(request, user)])

    def _issue_setup_codes(self, request: HttpRequest, users: list[Any]) -> None:
        # Shown once, like an API key: only their hashes are kept.
        hours = settings.TWO_FACTOR_SETUP_CODE_HOURS
        for user in users:
            code = issue_setup_code(user=user, by=request.user)
            self.message_user(
                request,
                f"Two-factor set-up code of {user.get_username()}, shown only now and valid {hours} hours: {code}. "
                "Give it to them in person or by phone, not next to their password.",
                messages.WARNING,
            )


admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class LockoutAdmin(AccessAttemptAdmin):
    """django-axes' lock-outs: Administrators unlock by deleting an attempt (delete permission),
    which its clean-up action needs too (axes offers it to anyone who opens the list)."""

    @admin.action(description="Clean up expired attempts", permissions=["delete"])
    def cleanup_expired_attempts(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().cleanup_expired_attempts(request, queryset)
