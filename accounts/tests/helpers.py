"""Staff users with a role, logged in as they would be after a (two-factor) login."""

from __future__ import annotations

import time

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.roles import ADMINISTRATOR, AGENT, DATA_OFFICER, SUPERVISOR

NO_ROLE = "staff without a role"
EVERY_ROLE = [AGENT, SUPERVISOR, DATA_OFFICER, ADMINISTRATOR, NO_ROLE]


def make_staff(username: str, *roles: str, password: str = "correct-horse-battery-9", **fields):
    """An active staff user holding `roles` (names from accounts.roles)."""
    user = get_user_model().objects.create_user(username, password=password, is_staff=True, **fields)
    user.groups.add(*Group.objects.filter(name__in=roles))
    assert user.groups.count() == len(roles), f"unknown role among {roles}"
    return user


def log_in(client, user, *, second_factor: bool = True):
    """force_login, and with `second_factor` a session that passed it (a confirmed app device)."""
    client.force_login(user)
    if second_factor:
        device, _ = TOTPDevice.objects.get_or_create(user=user, defaults={"name": "phone", "confirmed": True})
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


def user_with(role: str):
    """A staff user holding `role` (or none: NO_ROLE), named after it."""
    return make_staff(role.lower().replace(" ", "_"), *([] if role == NO_ROLE else [role]))


def code_for(key: bytes, *, steps_ahead: int = 0) -> str:
    """What the authenticator app shows now (or `steps_ahead` periods of 30 s later). Never in a
    period's last 2 seconds: a code that reaches the server in the next period is taken as the
    phone's clock running behind (django-otp's OTP_TOTP_SYNC), and a later `steps_ahead` code
    then falls outside the tolerance."""
    if (left := 30 - time.time() % 30) < 2:
        time.sleep(left)
    totp = TOTP(key)
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"
