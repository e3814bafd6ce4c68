"""Merging and splitting contacts: staff decide which channel identities are one person.

Identities join a contact by themselves only when their E.164 number matches
(services/inbound.py); an email or name that matches is only suggested
(selectors/contacts.py). Both moves are audited on the contact (who, when, what), and a merge is
undone by splitting the identities it brought back out: the split restores the details the
merged contact had.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from conversations import notify
from conversations.models import AuditEntry
from conversations.services import budgets
from profiles.models import EXTRACTABLE_FIELDS, ClientProfile, Contact

# What a merge carries over and a split may restore: the person's details and their provenance.
_DETAIL_FIELDS = (*EXTRACTABLE_FIELDS, "details_declined_at")


def merge_contacts(*, target_id: int, source_id: int, user: User | None) -> Contact:
    """Move every identity (and the audit history) of contact `source_id` to `target_id`, fill
    the target's empty details from the source, keep any opt-out, and delete the source."""
    if target_id == source_id:
        raise ValidationError("A contact cannot be merged with itself.")
    with transaction.atomic():
        # Locked in id order, so two merges of the same pair cannot deadlock.
        locked = {
            c.pk: c for c in Contact.objects.select_for_update().filter(pk__in=[target_id, source_id]).order_by("pk")
        }
        if len(locked) != 2:
            raise Contact.DoesNotExist("Both contacts must exist.")
        target, source = locked[target_id], locked[source_id]
        identity_ids = sorted(source.identities.values_list("pk", flat=True))
        taken = _fill_empty_details(target, source)
        # A STOP the person gave on any channel stands for the merged contact.
        if source.opted_out_at and not target.opted_out_at:
            target.opted_out_at = source.opted_out_at
        if source.opted_in_at and (not target.opted_in_at or source.opted_in_at > target.opted_in_at):
            target.opted_in_at = source.opted_in_at
        source_number = source.phone_number
        snapshot = {name: _jsonable(getattr(source, name)) for name in (*_DETAIL_FIELDS, "field_sources")}
        ClientProfile.objects.filter(contact=source).update(contact=target, updated_at=timezone.now())
        AuditEntry.objects.filter(contact=source).update(contact=target)
        budgets.move_usage(source_id=source.pk, target_id=target.pk)
        source.delete()
        if source_number and not target.phone_number:
            target.phone_number = source_number
        target.save()
        # Who, when, what: the identities moved and the merged contact's details, so a split
        # of those identities can give them back (personal data: exported and erased with the contact).
        AuditEntry.objects.create(
            actor=user,
            action="contact.merged",
            contact=target,
            detail={
                "merged_contact_id": source_id,
                "identity_ids": identity_ids,
                "fields_taken": taken,
                "merged_contact": snapshot,
            },
        )
        notify.contact_changed(contact_id=target.pk)
    return target


def split_identity(*, identity_id: int, user: User | None) -> Contact:
    """Move one identity out of its contact into a new contact of its own (which keeps the
    contact's consent; and its former details when a merge brought it in). Returns the new contact."""
    with transaction.atomic():
        identity = ClientProfile.objects.select_related("contact").select_for_update().get(pk=identity_id)
        source = Contact.objects.select_for_update().get(pk=identity.contact_id)
        others = source.identities.exclude(pk=identity.pk)
        if not others.exists():
            raise ValidationError("This identity is the contact's only one: there is nothing to split.")
        contact = Contact(opted_out_at=source.opted_out_at, opted_in_at=source.opted_in_at)
        merge = _merge_that_brought(identity, source)
        if merge is not None:
            for name, value in merge.detail["merged_contact"].items():
                setattr(contact, name, value)
        number = identity.phone_number
        # New identities of the number follow it, unless the old contact keeps another with it.
        moves_number = (
            bool(number) and source.phone_number == number and not others.filter(phone_number=number).exists()
        )
        if moves_number:
            Contact.objects.filter(pk=source.pk).update(phone_number=None)
            contact.phone_number = number
        contact.save()
        ClientProfile.objects.filter(pk=identity.pk).update(contact=contact, updated_at=timezone.now())
        detail = {"identity_id": identity.pk, "new_contact_id": contact.pk, "restored_merge": merge is not None}
        AuditEntry.objects.create(actor=user, action="contact.split", contact=source, detail=detail)
        AuditEntry.objects.create(
            actor=user, action="contact.split", contact=contact, detail={**detail, "from_contact_id": source.pk}
        )
        notify.contact_changed(contact_id=source.pk)
        notify.contact_changed(contact_id=contact.pk)
    return contact


def _fill_empty_details(target: Contact, source: Contact) -> list[str]:
    sources = dict(target.field_sources or {})
    taken = []
    for name in EXTRACTABLE_FIELDS:
        if getattr(source, name) and not getattr(target, name) and name not in _staff_cleared(target):
            setattr(target, name, getattr(source, name))
            if name in (source.field_sources or {}):
                sources[name] = source.field_sources[name]
            taken.append(name)
    target.field_sources = sources
    if source.details_declined_at and not target.details_declined_at:
        target.details_declined_at = source.details_declined_at
    return taken


def _staff_cleared(contact: Contact) -> set[str]:
    """Fields staff emptied on purpose: a merge does not refill them either."""
    return {
        name
        for name, source in (contact.field_sources or {}).items()
        if isinstance(source, dict) and source.get("source") == "staff" and not getattr(contact, name, "")
    }


def _merge_that_brought(identity: ClientProfile, contact: Contact) -> AuditEntry | None:
    for entry in AuditEntry.objects.filter(contact=contact, action="contact.merged").order_by("-created_at", "-pk"):
        if identity.pk in entry.detail.get("identity_ids", []):
            return entry
    return None


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value
