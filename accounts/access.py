"""Who may do what: the one place staff permissions are checked.

Declaring the permission of something new (docs/architecture.md, "Staff permissions"):
- a DRF view: `required_permission = "app_label.codename"` on the class (StaffPermission, the
  project's default permission class, refuses a view that declares none);
- a Django view: `@staff_permission_required("app_label.codename")`;
- a live-inbox websocket action: `@socket_action("name", permission="app_label.codename")`
  (channels_app/consumers.py), events: the consumer's `event_permissions`;
- an admin action: `@admin.action(permissions=[...])` with a `has_<name>_permission` method.
Every check reads the user's permissions afresh (one request, one socket message), so a
revoked permission takes effect at the next request or message, without a new login.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import SESSION_KEY, get_user_model
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device
from rest_framework.permissions import BasePermission

from accounts.sessions import is_idle, session_store

if TYPE_CHECKING:  # DRF's views import the default permission class, this module
    from rest_framework.request import Request
    from rest_framework.views import APIView
from accounts.two_factor import second_factor_owed


def is_session_verified(user: Any) -> bool:
    """True when this request's session passed a second factor (django-otp's middleware)."""
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified())


def may_act_as_staff(user: Any, *, is_verified: bool) -> bool:
    """Active staff who passed the second factor their role needs (or that they set up)."""
    if user is None or not (user.is_authenticated and user.is_active and user.is_staff):
        return False  # DRF's anonymous user is None (UNAUTHENTICATED_USER)
    return is_verified or second_factor_owed(user) is None


def has_staff_permission(user: Any, permission: str, *, is_verified: bool) -> bool:
    """Read afresh: Django caches permissions on the user object, which lives for one request."""
    return may_act_as_staff(user, is_verified=is_verified) and user.has_perm(permission)


class StaffPermission(BasePermission):
    """The staff API's default: the view's `required_permission`, checked on every request."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        permission = getattr(view, "required_permission", None)
        if not permission:
            raise ImproperlyConfigured(f"{type(view).__name__} declares no required_permission")
        return has_staff_permission(request.user, permission, is_verified=is_session_verified(request.user))


def staff_permission_required(permission: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A staff page: anonymous visitors go to the login page, staff without `permission` get 403."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_staff_permission(request.user, permission, is_verified=is_session_verified(request.user)):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return staff_member_required(checked)

    return decorator


def has_socket_permission(user_id: int, session_key: str | None, permission: str) -> bool:
    """A websocket's check, made for each message: the user and session as they are now."""
    return socket_permissions(user_id, session_key, [permission])[permission]


def socket_permissions(user_id: int, session_key: str | None, permissions: Iterable[str]) -> dict[str, bool]:
    """has_socket_permission for several permissions, reading the session and the user once."""
    permissions = list(permissions)
    session = session_store(session_key)
    # A logged-out (deleted) session loads empty; an idle one has ended: watching is no activity.
    if session_key is None or session.get(SESSION_KEY) != str(user_id) or is_idle(session):
        return dict.fromkeys(permissions, False)
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return dict.fromkeys(permissions, False)
    device_id = session.get(DEVICE_ID_SESSION_KEY)
    device = Device.from_persistent_id(device_id) if device_id else None
    is_verified = device is not None and device.user_id == user.pk and device.confirmed
    return {permission: has_staff_permission(user, permission, is_verified=is_verified) for permission in permissions}
