"""Services that change client profiles: extraction from chat and edits by staff."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from conversations import ai, notify
from conversations.models import AuditEntry, Message, ModelUsage
from conversations.selectors.prompt import list_customer_texts
from conversations.services.context import scrub_provider_refs
from conversations.services.usage import record_model_usage
from profiles.extraction import EXTRACTION_INSTRUCTIONS, STAFF, ClientInfo, clean_field_value, merge_client_info
from profiles.models import EXTRACTABLE_FIELDS, ClientProfile

logger = logging.getLogger(__name__)

# What staff may correct (also what extraction fills); provider ids and the number replies go to are not.
STAFF_EDITABLE_FIELDS = EXTRACTABLE_FIELDS


def extract_profile_from_message(*, message_id: int) -> ClientProfile | None:
    """Update the sender's own profile from their recent messages (allow-listed fields only)."""
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None or message.author != Message.Author.CUSTOMER or ai.is_offline():
        return None
    conversation = message.conversation
    own_texts = list_customer_texts(message=message, limit=settings.PROFILE_EXTRACTION_MESSAGES)
    transcript = "\n".join(f"- {scrub_provider_refs(text=text)}" for text in own_texts)
    if not transcript:
        return None
    try:
        answer = ai.parse_structured(instructions=EXTRACTION_INSTRUCTIONS, text=transcript, schema=ClientInfo)
    except ai.ModelUnavailable as exc:
        # Not worth a retry: the customer's next message brings another extraction.
        logger.warning("Profile extraction for message %s failed: %s", message.pk, exc)
        return None
    record_model_usage(message=message, purpose=ModelUsage.Purpose.EXTRACTION, answer=answer)
    if answer.parsed is None:
        return None
    with transaction.atomic():
        # Locked so a staff edit committed meanwhile is seen (and wins) before merging.
        profile = ClientProfile.objects.select_for_update().get(pk=conversation.profile_id)
        now = timezone.now()
        updates = merge_client_info(profile=profile, info=answer.parsed, now=now)
        if updates:
            ClientProfile.objects.filter(pk=profile.pk).update(**updates, updated_at=now)
            logger.info("Profile %s updated by extraction: %s", profile.pk, sorted(set(updates) - {"field_sources"}))
            notify.profile_changed(profile_id=profile.pk)
    profile.refresh_from_db()
    return profile


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
