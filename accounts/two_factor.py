"""Two-factor login with django-otp: an authenticator app (TOTP) and one-time recovery codes."""

from __future__ import annotations

import hashlib
import re
import secrets
from base64 import b32encode
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.db.models import Exists, OuterRef, Value
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.audit import current_user, record_security_event, target_of
from accounts.models import SecurityEvent, TwoFactorSetupCode
from accounts.roles import TWO_FACTOR_ROLES

RECOVERY_CODE_COUNT = 10
APP_DEVICE_NAME = "Authenticator app"
RECOVERY_DEVICE_NAME = "Recovery codes"
_APP_CODE = re.compile(r"^\d{6}$")
# Set-up codes: 12 characters (60 bits), none that reads as another (0/O, 1/I).
_SETUP_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_SETUP_CODE_LENGTH = 12


class CodeRefused(Exception):
    """A second-factor code was not accepted; the message is for the person typing it."""


def has_two_factor(user: Any) -> bool:
    """Two-factor login is on: an authenticator app is set up (recovery codes come with it)."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def second_factor_owed(user: Any) -> str | None:
    """What a staff session that has not passed a second factor must do first, in one query:
    "verify" (the app is set up), "set_up" (the role or the setting needs it) or None.
    Remembered on the user object, which lives for one request (or one socket message)."""
    if hasattr(user, "_second_factor_owed"):
        return user._second_factor_owed
    user._second_factor_owed = _second_factor_owed(user)
    return user._second_factor_owed


def _second_factor_owed(user: Any) -> str | None:
    if settings.STAFF_TWO_FACTOR_REQUIRED or user.is_superuser:
        role_needs_it: Any = Value(True)
    else:
        role_needs_it = Exists(Group.objects.filter(user=OuterRef("pk"), name__in=TWO_FACTOR_ROLES))
    state = (
        get_user_model()
        .objects.filter(pk=user.pk)
        .values(
            has_app=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)),
            is_required=role_needs_it,
        )
        .first()
    )
    if state is None:
        return None
    if state["has_app"]:
        return "verify"
    return "set_up" if state["is_required"] else None


@transaction.atomic
def issue_setup_code(*, user: Any, by: Any, by_label: str = "") -> str:
    """A new one-time set-up code for `user`, valid TWO_FACTOR_SETUP_CODE_HOURS (an earlier one
    stops working); audited. `by` is the Administrator (None: the operator of a command, named
    by `by_label`)."""
    code = "".join(secrets.choice(_SETUP_CODE_ALPHABET) for _ in range(_SETUP_CODE_LENGTH))
    TwoFactorSetupCode.objects.filter(user=user).delete()
    TwoFactorSetupCode.objects.create(
        user=user,
        code_hash=_hash_setup_code(code),
        issued_by=by if getattr(by, "is_authenticated", False) else None,
        expires_at=timezone.now() + timedelta(hours=settings.TWO_FACTOR_SETUP_CODE_HOURS),
    )
    record_security_event(
        action=SecurityEvent.Action.TWO_FACTOR_SETUP_CODE_ISSUED, actor=by, actor_label=by_label, target=target_of(user)
    )
    return "-".join(code[start : start + 4] for start in range(0, _SETUP_CODE_LENGTH, 4))


def redeem_setup_code(*, request: Any, user: Any, code: str) -> None:
    """Use up `user`'s set-up code and forget any app key made before it; raises CodeRefused,
    which counts as a failed login for the lock-out."""
    is_valid = TwoFactorSetupCode.objects.filter(
        user=user, code_hash=_hash_setup_code(code), expires_at__gt=timezone.now()
    ).delete()[0]
    if not is_valid:
        _count_failure(request, user, step="setup_code")
        raise CodeRefused("That set-up code is not valid or has expired: ask an Administrator for a new one.")
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()


def _hash_setup_code(code: str) -> str:
    # Random and short-lived, behind the lock-out: a fast hash is enough.
    return hashlib.sha256(re.sub(r"[\s-]", "", code).upper().encode()).hexdigest()


def pending_app_device(*, user: Any) -> TOTPDevice:
    """The authenticator-app device being set up (its key is shown until a code confirms it)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    return device or TOTPDevice.objects.create(user=user, name=APP_DEVICE_NAME, confirmed=False)


def qr_code_svg(device: TOTPDevice) -> str:
    """The otpauth:// URL as an inline SVG, for the authenticator app to scan."""
    import qrcode  # only the set-up page draws one
    import qrcode.image.svg

    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return image.to_string(encoding="unicode")


def secret_of(device: TOTPDevice) -> str:
    """The key in the base32 form authenticator apps accept when typed."""
    return b32encode(device.bin_key).decode()


@transaction.atomic
def confirm_app_device(*, user: Any, code: str) -> tuple[TOTPDevice, list[str]]:
    """Turn two-factor on with the first code from the app; returns the device and new recovery
    codes. Raises CodeRefused."""
    device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        raise CodeRefused("Scan the code again: this set-up has expired.")
    if not device.verify_is_allowed()[0]:
        raise CodeRefused("Too many tries in a row: wait a few seconds, then enter the current code.")
    if not device.verify_token(code.strip()):
        raise CodeRefused("That code is not valid: check the time on your phone and try the next one.")
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes = renew_recovery_codes(user=user, audit=False)
    record_security_event(action=SecurityEvent.Action.TWO_FACTOR_ENABLED, actor=user, target=f"auth.user #{user.pk}")
    return device, codes


@transaction.atomic
def renew_recovery_codes(*, user: Any, audit: bool = True) -> list[str]:
    """Replace the user's recovery codes with new ones (each works once)."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    if audit:
        record_security_event(
            action=SecurityEvent.Action.RECOVERY_CODES_RENEWED, actor=user, target=f"auth.user #{user.pk}"
        )
    return codes


@transaction.atomic
def reset_two_factor(*, user: Any, by: Any) -> None:
    """Remove every second factor of `user` (a lost phone): they set it up again at next login.

    Recorded by the device's delete signal (accounts/signals.py), as a deletion in the admin is."""
    token = current_user.set(by)
    try:
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
    finally:
        current_user.reset(token)


def verify_second_factor(*, request: Any, user: Any, code: str) -> Any:
    """The device that accepts `code` (six digits: the app; otherwise a recovery code).

    Raises CodeRefused. A wrong code counts as a failed login for the lock-out (django-axes);
    django-otp also makes each device wait longer after each failure (a retry within that wait
    is refused without being checked or counted).
    """
    code = code.strip().replace(" ", "").lower()
    model = TOTPDevice if _APP_CODE.match(code) else StaticDevice
    device = model.objects.filter(user=user, confirmed=True).first()
    if device is not None:
        is_allowed, _ = device.verify_is_allowed()
        if not is_allowed:
            raise CodeRefused("Too many tries in a row: wait a few seconds, then enter the current code.")
        if device.verify_token(code):
            return device
    _count_failure(request, user)
    raise CodeRefused("That code is not valid.")


def _count_failure(request: Any, user: Any, **detail: str) -> None:
    """A wrong code: audited, and a failed login for django-axes' lock-out."""
    record_security_event(
        action=SecurityEvent.Action.SECOND_FACTOR_FAILED, actor=user, target=f"auth.user #{user.pk}", detail=detail
    )
    user_login_failed.send(sender=__name__, credentials={"username": user.get_username()}, request=request)
