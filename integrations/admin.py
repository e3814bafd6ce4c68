"""API tokens and outgoing webhooks in the admin: create, revoke, configure, read the delivery
log, resend."""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from conversations import events
from integrations.models import ApiToken, Scope, WebhookDelivery, WebhookEndpoint
from integrations.tokens import may_manage_api_token, revoke_api_tokens, save_changed_api_token, save_new_api_token
from integrations.webhooks import forget_subscriptions, resend_deliveries


class ApiTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiToken
        fields = ["name", "user", "scopes"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = ["name", "prefix", "user", "scope_list", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    @admin.display(description="scopes")
    def scope_list(self, token: ApiToken) -> str:
        return ", ".join(token.scopes)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        # The key is not shown again, and a token does not change hands.
        return [*self.readonly_fields, "user"] if obj else self.readonly_fields

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user":
            # Active staff; only for oneself unless one may create tokens for others (tokens.py).
            staff = get_user_model().objects.filter(is_staff=True, is_active=True)
            if not request.user.has_perm("integrations.add_apitoken_for_others"):
                staff = staff.filter(pk__in=[request.user.pk])
                kwargs["initial"] = request.user.pk
            kwargs["queryset"] = staff
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        # Another's token is read-only unless one may create tokens for others (tokens.py).
        return super().has_change_permission(request, obj) and (
            obj is None or may_manage_api_token(actor=request.user, owner_id=obj.user_id, action="change")
        )

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return super().has_delete_permission(request, obj) and (
            obj is None or may_manage_api_token(actor=request.user, owner_id=obj.user_id, action="delete")
        )

    def save_model(self, request: HttpRequest, obj: ApiToken, form: forms.Form, change: bool) -> None:
        if change:
            save_changed_api_token(token=obj, changed=form.changed_data, changed_by=request.user)
            return
        key = save_new_api_token(token=obj, created_by=request.user)
        messages.warning(request, f"The key of {obj.name!r}, shown only now (only its hash is kept): {key}")

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = revoke_api_tokens(token_ids=list(queryset.values_list("pk", flat=True)), revoked_by=request.user)
        self.message_user(request, f"{count} token(s) revoked: they are refused from now on.")


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=[(name, name) for name in events.ALL], widget=forms.CheckboxSelectMultiple
    )
    secret = forms.CharField(initial=lambda: secrets.token_urlsafe(32), max_length=100)

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "url", "events", "secret", "is_active"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["name", "url", "is_active", "consecutive_failures", "disabled_reason"]
    readonly_fields = ["consecutive_failures", "disabled_reason", "created_at"]

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: forms.Form, change: bool) -> None:
        if obj.is_active:
            obj.consecutive_failures, obj.disabled_reason = 0, ""
        super().save_model(request, obj, form, change)
        forget_subscriptions()

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        for endpoint in WebhookEndpoint.objects.exclude(disabled_reason="").filter(is_active=False):
            messages.warning(request, f"Outgoing webhook {endpoint.name!r}: {endpoint.disabled_reason}")
        return super().changelist_view(request, extra_context)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["event", "endpoint", "status", "response_status", "attempts", "error", "created_at"]
    list_filter = ["status", "event", "endpoint"]
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]
    actions = ["resend"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WebhookDelivery | None = None) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        # Sends data out again: for whoever may configure the endpoints.
        return request.user.has_perm("integrations.change_webhookendpoint")

    @admin.action(description="Resend the selected deliveries", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        copies = resend_deliveries(delivery_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{len(copies)} delivery(ies) queued again.")
