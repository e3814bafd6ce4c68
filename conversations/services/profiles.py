"""Services that change a contact's details: what the customer gave in chat, and edits by staff."""

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
from profiles.models import EXTRACTABLE_FIELDS, Contact

logger = logging.getLogger(__name__)

# What staff may correct (also what the model records); provider ids and the number replies go to are not.
STAFF_EDITABLE_FIELDS = EXTRACTABLE_FIELDS
# Offered to the model with every reply: the customer's details come with the answer.
CLIENT_DETAILS = DetailsTool(schema=ClientInfo, description=DETAILS_TOOL_DESCRIPTION)


def record_client_details(*, message: Message, info: ClientInfo) -> bool:
    """Merge what the customer said about themselves, as the model recorded it while answering
    `message`, into the sender's own contact (allow-listed fields, merge rules); True if it changed."""
    with transaction.atomic():
        # Locked so a staff edit committed meanwhile is seen (and wins) before merging; read
        # through the identity, as a merge may have moved it to another contact since.
        contact = (
            Contact.objects.select_for_update(of=("self",)).filter(identities=message.conversation.profile_id).first()
        )
        if contact is None:  # erased meanwhile: nothing to record about anyone
            return False
        now = timezone.now()
        updates = merge_client_info(contact=contact, info=info, now=now)
        if updates:
            Contact.objects.filter(pk=contact.pk).update(**updates, updated_at=now)
            logger.info("Contact %s updated from chat: %s", contact.pk, sorted(set(updates) - {"field_sources"}))
            notify.contact_changed(contact_id=contact.pk)
    return bool(updates)


def update_contact_by_staff(*, contact_id: int, user: User | None, changes: Mapping[str, str]) -> Contact:
    """Set contact fields typed by staff, marked 'staff' so extraction never overwrites them.

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
        contact = Contact.objects.select_for_update().get(pk=contact_id)
        now = timezone.now()
        sources = dict(contact.field_sources or {})
        for name in cleaned:
            sources[name] = {"source": STAFF, "at": now.isoformat()}
        Contact.objects.filter(pk=contact.pk).update(**cleaned, field_sources=sources, updated_at=now)
        # Field names only: the values are personal data and live in the contact itself.
        AuditEntry.objects.create(
            actor=user, action="contact.edited_by_staff", contact=contact, detail={"fields": sorted(cleaned)}
        )
        notify.contact_changed(contact_id=contact.pk)
    contact.refresh_from_db()
    return contact
