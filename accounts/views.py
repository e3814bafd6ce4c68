"""The staff member's own security pages: the second factor at login, setting it up, sessions."""

from __future__ import annotations

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_lockout_response
from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp import login as otp_login

from accounts.access import is_session_verified
from accounts.roles import is_two_factor_required
from accounts.sessions import end_other_sessions
from accounts.two_factor import (
    CodeRefused,
    confirm_app_device,
    has_two_factor,
    pending_app_device,
    qr_code_svg,
    redeem_setup_code,
    renew_recovery_codes,
    reset_two_factor,
    secret_of,
    verify_second_factor,
)

# The session gave the set-up code of this user id (accounts/two_factor.py: redeem_setup_code).
_SETUP_CODE_GIVEN = "two_factor_setup_code_given"


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "inputmode": "text"}),
    )


def _next_url(request: HttpRequest) -> str:
    url = request.POST.get("next") or request.GET.get("next") or ""
    if url and url_has_allowed_host_and_scheme(url, {request.get_host()}, require_https=request.is_secure()):
        return url
    return reverse("admin:index")


def _lockout_response(request: HttpRequest) -> HttpResponse | None:
    """Locked out (django-axes: failed passwords and codes): logged out, and told so."""
    credentials = {"username": request.user.get_username()}
    if getattr(request, "axes_locked_out", False) or AxesProxyHandler.is_locked(request, credentials):
        logout(request)
        return get_lockout_response(request, None, credentials)
    return None


@never_cache
@login_required(login_url="admin:login")
def verify(request: HttpRequest) -> HttpResponse:
    """The second step of a login: a code from the authenticator app, or a recovery code."""
    if not has_two_factor(request.user):
        return redirect(_next_url(request))
    if locked_out := _lockout_response(request):
        return locked_out
    form = CodeForm(request.POST or None)
    if form.is_valid():
        try:
            device = verify_second_factor(request=request, user=request.user, code=form.cleaned_data["code"])
        except CodeRefused as refused:
            if locked_out := _lockout_response(request):
                return locked_out
            form.add_error("code", str(refused))
        else:
            otp_login(request, device)
            return redirect(_next_url(request))
    return render(
        request, "accounts/verify.html", {"form": form, "next": _next_url(request), "title": "Two-factor login"}
    )


@never_cache
@login_required(login_url="admin:login")
def two_factor(request: HttpRequest) -> HttpResponse:
    """Set up the authenticator app (scan, confirm with a code), renew recovery codes, turn it off."""
    user = request.user
    if has_two_factor(user) and not is_session_verified(user):
        # Only a session that gave the second factor may change it (renew codes, turn it off).
        return redirect(f"{reverse('accounts:verify')}?{urlencode({'next': request.get_full_path()})}")
    context: dict = {"title": "Two-factor login", "required": is_two_factor_required(user), "next": _next_url(request)}
    action = request.POST.get("action")
    form = CodeForm(request.POST if action in ("confirm", "turn_off", "setup_code") else None)
    # Where it is required, no key is made or shown before a set-up code: the password alone sets
    # up nothing (accounts/two_factor.py: redeem_setup_code).
    if context["required"] and not has_two_factor(user) and request.session.get(_SETUP_CODE_GIVEN) != user.pk:
        return _setup_code_step(request, context, form)
    if not has_two_factor(user):
        if action == "confirm" and form.is_valid():
            try:
                device, codes = confirm_app_device(user=user, code=form.cleaned_data["code"])
            except CodeRefused as refused:
                form.add_error("code", str(refused))
            else:
                otp_login(request, device)
                request.session.pop(_SETUP_CODE_GIVEN, None)
                return render(request, "accounts/recovery_codes.html", {**context, "codes": codes})
        device = pending_app_device(user=user)
        context.update(form=form, qr_code=qr_code_svg(device), secret=secret_of(device))
        return render(request, "accounts/two_factor_setup.html", context)
    if action == "renew_codes":
        return render(request, "accounts/recovery_codes.html", {**context, "codes": renew_recovery_codes(user=user)})
    if action == "turn_off" and form.is_valid():
        try:
            verify_second_factor(request=request, user=user, code=form.cleaned_data["code"])
        except CodeRefused as refused:
            form.add_error("code", str(refused))
        else:
            reset_two_factor(user=user, by=user)
            messages.success(request, "Two-factor login is off.")
            return redirect("accounts:two-factor")
    return render(request, "accounts/two_factor.html", {**context, "form": form})


def _setup_code_step(request: HttpRequest, context: dict, form: CodeForm) -> HttpResponse:
    """The set-up code asked before an authenticator app may be set up; on to the app once given."""
    if locked_out := _lockout_response(request):
        return locked_out
    if request.POST.get("action") == "setup_code" and form.is_valid():
        try:
            redeem_setup_code(request=request, user=request.user, code=form.cleaned_data["code"])
        except CodeRefused as refused:
            if locked_out := _lockout_response(request):
                return locked_out
            form.add_error("code", str(refused))
        else:
            request.session[_SETUP_CODE_GIVEN] = request.user.pk
            return redirect(request.get_full_path())
    return render(request, "accounts/two_factor_setup_code.html", {**context, "form": form})


@require_POST
@login_required(login_url="admin:login")
def end_sessions(request: HttpRequest) -> HttpResponse:
    ended = end_other_sessions(user=request.user, keep_session_key=request.session.session_key)
    messages.success(request, f"Logged out {ended} other session(s).")
    return redirect("accounts:two-factor")
