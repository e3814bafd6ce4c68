"""Writing the security audit trail (accounts.models.SecurityEvent) and purging it."""

from __future__ import annotations

import contextvars
import datetime
import logging
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import SecurityEvent

logger = logging.getLogger(__name__)

# The client address of the request (or websocket) being served: set by
# accounts.middleware.SecurityMiddleware and the live inbox consumer, read by every event.
client_ip: contextvars.ContextVar[str | None] = contextvars.ContextVar("client_ip", default=None)
# Who is acting in that request, for events whose signal does not say (a role changed in the admin).
current_user: contextvars.ContextVar[Any] = contextvars.ContextVar("current_user", default=None)


def target_of(obj: models.Model) -> str:
    """How an event names what it touched: model and id, never the object's text."""
    return f"{obj._meta.label_lower} #{obj.pk}"


def record_security_event(
    *,
    action: str,
    actor: Any = None,
    actor_label: str = "",
    target: str = "",
    detail: dict[str, Any] | None = None,
    ip_address: str | None = None,
) -> SecurityEvent:
    """Append one event to the audit trail (who, when, from where, what; no contents)."""
    if actor is None:
        actor = current_user.get()
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    event = SecurityEvent.objects.create(
        action=action,
        actor=actor,
        actor_label=actor_label or (actor.get_username() if actor is not None else ""),
        ip_address=ip_address or client_ip.get(),
        target=target,
        detail=detail or {},
    )
    logger.info("security event %s by %s", action, event.actor_label or "system")
    return event


def describe_login_client(
    username: str | None, ip_address: str | None, user_agent: str, path_info: Any, request: Any
) -> str:
    """How django-axes names a login attempt in its log lines (AXES_CLIENT_STR_CALLABLE): the
    typed name only when it is an account, since people type passwords and phone numbers there."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    is_account = bool(username) and User.objects.filter(**{User.USERNAME_FIELD: username}).exists()
    path = path_info[0] if isinstance(path_info, (list, tuple)) else path_info
    return f"account {username if is_account else '(no such account)'} from {ip_address} on {path}"


def purge_security_events(*, now: datetime.datetime | None = None) -> int:
    """Delete events older than SECURITY_AUDIT_RETENTION_DAYS; returns how many went."""
    cutoff = (now or timezone.now()) - datetime.timedelta(days=settings.SECURITY_AUDIT_RETENTION_DAYS)
    deleted, _ = SecurityEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted
