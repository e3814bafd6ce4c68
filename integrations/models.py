from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Scope(models.TextChoices):
    """What a token may do; each staff API view names the one it needs (`required_scope`)."""

    READ_CONVERSATIONS = "read_conversations", "Read conversations and messages"
    SEND_MESSAGES = "send_messages", "Send messages and templates"
    TAKE_OVER = "take_over", "Take over and hand back conversations"
    MANAGE_CONTACTS = "manage_contacts", "Edit contacts' details"


class ApiToken(models.Model):
    """A key another system sends as `Authorization: Bearer <key>`. Only its SHA-256 is kept;
    the key is shown once, when staff create the token in the admin."""

    name = models.CharField(max_length=100, help_text="Who uses it, e.g. 'CRM sync'.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="The staff member the token acts as (takeovers and messages are theirs).",
    )
    scopes = models.JSONField(default=list)
    prefix = models.CharField(max_length=12, editable=False, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"
        # A token acts as its staff member: creating one for someone else is acting in their name.
        permissions = [("add_apitoken_for_others", "Can create API tokens for other staff members")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class WebhookEndpoint(models.Model):
    """A URL of the business's own systems that receives events, signed with `secret`."""

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500, help_text="https only; private and local addresses are refused.")
    events = models.JSONField(default=list, help_text="Names from conversations/events.py.")
    secret = models.CharField(max_length=100, help_text="Signs every body (HMAC-SHA256): share it with the receiver.")
    is_active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    disabled_reason = models.CharField(max_length=255, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "outgoing webhook"

    def __str__(self) -> str:
        return self.name


class WebhookDelivery(models.Model):
    """One event for one endpoint, and how sending it went (the delivery log)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField(default=uuid.uuid4, editable=False)
    event = models.CharField(max_length=40)
    # Ids and states only, never a message's text or a number: fetched through the API.
    body = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} to {self.endpoint}"
