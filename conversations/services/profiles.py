"""Services that change client profiles: details the customer gave in chat, and edits by staff."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from conversations import notify
from conversations.ai import DetailsTool
from conversations.models import AuditEntry, Message
from profiles.extraction import DETAILS_TOOL_DESCRIPTION, STAFF, ClientInfo, clean_field_value, merge_client_info
from profiles.models import EXTRACTABLE_FIELDS, ClientProfile

logger = logging.getLogger(__name__)

# What staff may correct (also what the model records); provider ids and the number replies go to are not.
STAFF_EDITABLE_FIELDS = EXTRACTABLE_FIELDS
# Offered to the model with every reply: the customer's details come with the answer.
CLIENT_DETAILS = DetailsTool(schema=ClientInfo, description=DETAILS_TOOL_DESCRIPTION)


def record_client_details(*, message: Message, info: ClientInfo) -> bool:
    """Merge what the customer said about themselves, as the model recorded it while answering
    `message`, into the sender's own profile (allow-listed fields, merge rules); True if it changed."""
    with transaction.atomic():
        # Locked so a staff edit committed meanwhile is seen (and wins) before merging.
        profile = ClientProfile.objects.select_for_update().get(pk=message.conversation.profile_id)
        now = timezone.now()
        updates = merge_client_info(profile=profile, info=info, now=now)
        if updates:
            ClientProfile.objects.filter(pk=profile.pk).update(**updates, updated_at=now)
            logger.info("Profile %s updated from chat: %s", profile.pk, sorted(set(updates) - {"field_sources"}))
            notify.profile_changed(profile_id=profile.pk)
    return bool(updates)


def update_profile_by_staff(*, profile_id: int, user: User, changes: Mapping[str, str]) -> ClientProfile:
    """Set profile fields typed by staff, marked 'staff' so extraction never overwrites them.

    Raises ValidationError for a field outside EXTRACTABLE_FIELDS or an invalid email. A field
    set to "" is cleared and stays staff-owned (extraction will not refill it).
    """
    unknown = set(changes) - set(EXTRACTABLE_FIELDS)
    if unknown:
        raise ValidationError(f"Fields that cannot be edited here: {', '.join(sorted(unknown))}")
    cleaned = {}
    for name, value in changes.items():
        cleaned[name] = clean_field_value(name, value)
        if value.strip() and not cleaned[name]:
            raise ValidationError({name: "Enter a valid value."})
    with transaction.atomic():
        profile = ClientProfile.objects.select_for_update().get(pk=profile_id)
        now = timezone.now()
        sources = dict(profile.field_sources or {})
        for name in cleaned:
            sources[name] = {"source": STAFF, "at": now.isoformat()}
        ClientProfile.objects.filter(pk=profile.pk).update(**cleaned, field_sources=sources, updated_at=now)
        # Field names only: the values are personal data and live in the profile itself.
        AuditEntry.objects.create(
            actor=user, action="profile.edited_by_staff", profile=profile, detail={"fields": sorted(cleaned)}
        )
        notify.profile_changed(profile_id=profile.pk)
    profile.refresh_from_db()
    return profile
