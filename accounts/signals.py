"""What the audit trail hears about: logins, lock-outs, role and account changes, admin edits,
second factors removed by an administrator; and the roles reset after every migrate."""

from __future__ import annotations

import logging
from typing import Any

from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.audit import current_user, record_security_event, target_of
from accounts.models import SecurityEvent
from accounts.roles import sync_roles
from accounts.sessions import mark_seen

logger = logging.getLogger(__name__)
User = get_user_model()
_ACCOUNT_FLAGS = ("is_active", "is_staff", "is_superuser")


def reset_roles(apps: Any = None, **kwargs: Any) -> None:
    if apps is not None and not {"accounts", "gdpr", "conversations"} <= {c.label for c in apps.get_app_configs()}:
        return  # a partial migrate (one app to a target): the roles come with the full one
    for missing in sync_roles(group_model=Group, permission_model=Permission):
        logger.warning("role permission not found (no such model or codename): %s", missing)


@receiver(user_logged_in, dispatch_uid="audit_login")
def audit_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        mark_seen(request.session)  # the idle timeout counts from the login
    record_security_event(action=SecurityEvent.Action.LOGIN, actor=user, target=target_of(user))


@receiver(user_logged_out, dispatch_uid="audit_logout")
def audit_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record_security_event(action=SecurityEvent.Action.LOGOUT, actor=user, target=target_of(user))


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def audit_login_failed(sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
    if sender == "accounts.two_factor":
        return  # recorded there, as a failed second factor
    # The typed name is kept only when it is a real account: a mistyped one may be a password.
    user = User.objects.filter(**{User.USERNAME_FIELD: credentials.get("username") or ""}).first()
    record_security_event(
        action=SecurityEvent.Action.LOGIN_FAILED,
        actor=user,
        actor_label="" if user else "(no such account)",
        target=target_of(user) if user else "",
    )


@receiver(user_locked_out, dispatch_uid="audit_locked_out")
def audit_locked_out(sender: Any, request: Any, username: str | None, ip_address: str, **kwargs: Any) -> None:
    user = User.objects.filter(**{User.USERNAME_FIELD: username or ""}).first()
    record_security_event(
        action=SecurityEvent.Action.LOCKED_OUT,
        actor=user,
        actor_label="" if user else "(no such account)",
        target=target_of(user) if user else "",
        ip_address=ip_address,
    )


@receiver(post_delete, sender=AccessAttempt, dispatch_uid="audit_lockout_released")
def audit_lockout_released(sender: Any, instance: AccessAttempt, **kwargs: Any) -> None:
    by = current_user.get()
    if by is None or not by.is_authenticated:
        return  # axes itself: a successful login, an expired attempt cleaned up
    user = User.objects.filter(**{User.USERNAME_FIELD: instance.username or ""}).first()
    record_security_event(
        action=SecurityEvent.Action.LOCKOUT_RELEASED,
        target=target_of(user) if user else "",
        detail={"failures": instance.failures_since_start, "ip_address": instance.ip_address},
    )


@receiver(post_delete, sender=TOTPDevice, dispatch_uid="app_device_deleted")
def app_device_deleted(sender: Any, instance: TOTPDevice, **kwargs: Any) -> None:
    """An app deleted in the admin takes its recovery codes with it: two-factor is off."""
    if instance.confirmed and not TOTPDevice.objects.filter(user_id=instance.user_id, confirmed=True).exists():
        StaticDevice.objects.filter(user_id=instance.user_id).delete()
        record_security_event(action=SecurityEvent.Action.TWO_FACTOR_DISABLED, target=f"auth.user #{instance.user_id}")


@receiver(pre_save, sender=User, dispatch_uid="audit_account_flags")
def audit_account_flags(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if instance.pk is None or (update_fields is not None and not set(update_fields) & set(_ACCOUNT_FLAGS)):
        return  # a new user, or a save that cannot touch the flags (last_login at each login)
    before = User.objects.filter(pk=instance.pk).values(*_ACCOUNT_FLAGS).first()
    if before is None:
        return
    changed = {flag: getattr(instance, flag) for flag in _ACCOUNT_FLAGS if before[flag] != getattr(instance, flag)}
    if changed:
        record_security_event(action=SecurityEvent.Action.ACCOUNT_CHANGED, target=target_of(instance), detail=changed)


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="audit_user_groups")
@receiver(m2m_changed, sender=User.user_permissions.through, dispatch_uid="audit_user_permissions")
@receiver(m2m_changed, sender=Group.permissions.through, dispatch_uid="audit_group_permissions")
def audit_role_change(
    sender: Any, instance: Any, action: str, reverse: bool, model: Any, pk_set: Any, **kwargs: Any
) -> None:
    if action not in ("post_add", "post_remove", "post_clear") or (action != "post_clear" and not pk_set):
        return
    names = sorted(str(obj) for obj in model.objects.filter(pk__in=pk_set or [])) if pk_set else []
    record_security_event(
        action=SecurityEvent.Action.ROLE_CHANGED,
        target=target_of(instance),
        detail={"change": action.removeprefix("post_"), "of": model._meta.label_lower, "items": names},
    )


@receiver(post_save, sender=LogEntry, dispatch_uid="audit_admin_change")
def audit_admin_change(sender: Any, instance: LogEntry, created: bool, **kwargs: Any) -> None:
    """Every add, change and delete made in the admin: which model and id, never its text."""
    if not created:
        return
    verb = {ADDITION: "added", CHANGE: "changed", DELETION: "deleted"}.get(instance.action_flag, "?")
    content_type = instance.content_type
    record_security_event(
        action=SecurityEvent.Action.CONFIGURATION_CHANGED,
        actor=instance.user,
        target=f"{content_type.app_label}.{content_type.model} #{instance.object_id}" if content_type else "",
        detail={"change": verb},
    )
