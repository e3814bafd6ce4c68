"""manage.py issue_two_factor_setup_code USERNAME: the code a staff member needs to set up their
authenticator app, for the first Administrator (no one can issue it in the admin yet)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.two_factor import issue_setup_code


class Command(BaseCommand):
    help = (
        "Print a one-time two-factor set-up code for a staff member, valid TWO_FACTOR_SETUP_CODE_HOURS "
        "(an earlier one stops working). Where two-factor login is required, the authenticator app is "
        "set up only with it; Administrators issue it in the admin (Users → Issue a two-factor set-up code)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: options["username"]}).first()
        if user is None or not (user.is_active and user.is_staff):
            raise CommandError(f"No active staff account {options['username']!r}.")
        code = issue_setup_code(user=user, by=None, by_label="manage.py issue_two_factor_setup_code")
        hours = settings.TWO_FACTOR_SETUP_CODE_HOURS
        self.stdout.write(f"Two-factor set-up code of {user.get_username()} (valid {hours} hours, once): {code}")
