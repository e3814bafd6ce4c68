"""Per request: remember the client address for the audit trail, hold back staff who owe a
second factor, and end idle staff sessions."""

from __future__ import annotations

from collections.abc import Callable

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from accounts.access import is_session_verified
from accounts.audit import client_ip, current_user
from accounts.sessions import has_been_idle
from accounts.two_factor import second_factor_owed


class StaffSecurityMiddleware:
    """After AuthenticationMiddleware and django-otp's OTPMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        ip_token = client_ip.set(get_client_ip_address(request))
        user_token = current_user.set(request.user)
        try:
            return self._handle(request)
        finally:
            client_ip.reset(ip_token)
            current_user.reset(user_token)

    def _handle(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if not (user.is_authenticated and user.is_staff):
            return self.get_response(request)
        if has_been_idle(request.session):
            logout(request)
            return _send_to(request, "admin:login", "The session ended after a time without activity.")
        if request.path.startswith(_exempt_paths()) or is_session_verified(user):
            return self.get_response(request)
        owed = second_factor_owed(user)
        if owed == "verify":
            return _send_to(request, "accounts:verify")
        if owed == "set_up":
            return _send_to(request, "accounts:two-factor")
        return self.get_response(request)


def _exempt_paths() -> tuple[str, ...]:
    """Pages a staff member owing a second factor may still reach: giving it, setting it up, leaving."""
    return (
        reverse("accounts:verify"),
        reverse("accounts:two-factor"),
        reverse("admin:logout"),
        settings.STATIC_URL if settings.STATIC_URL.startswith("/") else f"/{settings.STATIC_URL}",
    )


def _send_to(
    request: HttpRequest, url_name: str, detail: str = "Two-factor authentication is required."
) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": detail}, status=403)
    return redirect(f"{reverse(url_name)}?{urlencode({'next': request.get_full_path()})}")
