"""The security audit trail: who did what to staff accounts, roles and customer data, from where.

It never holds message contents or customer numbers: a target is a model and an id.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SecurityEvent(models.Model):
    class Action(models.TextChoices):
        LOGIN = "login", "Logged in"
        LOGIN_FAILED = "login.failed", "Failed login"
        LOCKED_OUT = "login.locked_out", "Locked out"
        SECOND_FACTOR_FAILED = "login.second_factor_failed", "Failed second factor"
        LOGOUT = "logout", "Logged out"
        OTHER_SESSIONS_ENDED = "sessions.ended_others", "Logged out other sessions"
        LOCKOUT_RELEASED = "lockout.released", "Lock-out released"
        TWO_FACTOR_ENABLED = "two_factor.enabled", "Two-factor enabled"
        TWO_FACTOR_DISABLED = "two_factor.disabled", "Two-factor turned off or reset"
        RECOVERY_CODES_RENEWED = "two_factor.recovery_codes", "Recovery codes renewed"
        ROLE_CHANGED = "role.changed", "Roles or permissions changed"
        ACCOUNT_CHANGED = "account.changed", "Account flags changed"
        EXPORT = "gdpr.export", "Personal data exported"
        ERASURE = "gdpr.erase", "Personal data erased"
        TAKEOVER = "conversation.taken_over", "Conversation taken over"
        CONFIGURATION_CHANGED = "configuration.changed", "Configuration changed"
        API_TOKEN_CREATED = "api_token.created", "API token created"
        API_TOKEN_CHANGED = "api_token.changed", "API token changed"
        API_TOKEN_REFUSED = "api_token.refused", "API token for someone else refused"
        API_TOKEN_REVOKED = "api_token.revoked", "API token revoked"
        TWO_FACTOR_SETUP_CODE_ISSUED = "two_factor.setup_code_issued", "Two-factor set-up code issued"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The login name at the time (kept when the user is deleted), or the operator of a command.
    actor_label = models.CharField(max_length=150, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # What it was done to: "<app_label>.<model> #<id>", never a name or a number.
    target = models.CharField(max_length=100, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor_label or 'system'}"


class TwoFactorSetupCode(models.Model):
    """A one-time code that lets a staff member set up an authenticator app where two-factor
    login is required: the password alone never does, or whoever stole it would set up theirs
    first. Issued by an Administrator (or a command), handed over out of band; at most one per
    user, deleted when used. Only its SHA-256 is kept."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    code_hash = models.CharField(max_length=64)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Two-factor set-up code of user #{self.user_id}"
