"""Writes to client profiles."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from channels_app import broadcast
from conversations.models import AuditEntry
from profiles.models import ClientProfile

# What staff may correct; provider ids and the phone number replies go to are not among them.
STAFF_EDITABLE_FIELDS = ("first_name", "last_name", "company", "email")


def update_profile_by_staff(*, profile_id: int, user: AbstractBaseUser, changes: dict[str, str]) -> ClientProfile:
    """Apply a staff member's corrections to a profile, audited as a staff edit."""
    unknown = set(changes) - set(STAFF_EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable by staff: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        profile = ClientProfile.objects.select_for_update().get(pk=profile_id)
        changed = [name for name, value in changes.items() if getattr(profile, name) != value]
        if not changed:
            return profile
        for name in changed:
            setattr(profile, name, changes[name])
        profile.save(update_fields=[*changed, "updated_at"])
        # Field names only: the values are personal data and live in the profile itself.
        AuditEntry.objects.create(
            actor=user, action="profile.edited_by_staff", profile=profile, detail={"fields": sorted(changed)}
        )
        broadcast.profile_changed(profile_id=profile.pk)
    return profile
