"""Finding "one person" from what a data officer has: a phone number, an email address, a
WhatsApp id or BSUID, a web chat visitor id, a contact id or an identity (profile) id.

Whatever it is, it resolves to the whole person: every contact it names, with every channel
identity of those contacts (Meta, Twilio WhatsApp, Twilio SMS, web chat, simulator), including
identities the identifier itself does not mention (a web chat visitor found by their email).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django.utils.crypto import salted_hmac

from conversations.services.inbound import record_pending_inbound
from gdpr.models import ErasureRecord
from profiles.models import ClientProfile, Contact, Provider

Kind = ErasureRecord.IdentifierKind

_WHATSAPP_PREFIX = "whatsapp:"
_PHONE = re.compile(r"^\+?[\d\s().-]{8,24}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
# Profile ids are short; anything with 8 or more digits is read as a phone number.
_MAX_PROFILE_ID_DIGITS = 7


class SubjectNotFound(LookupError):
    """No contact matches the identifier."""


@dataclass(frozen=True)
class Subject:
    kind: str  # an ErasureRecord.IdentifierKind value
    normalized: str  # "+15551234567", "ada@example.com", "US.123…", "42"
    contacts: list[Contact]
    profiles: list[ClientProfile]  # every identity of those contacts

    @property
    def contact_ids(self) -> list[int]:
        return [contact.pk for contact in self.contacts]

    @property
    def profile_ids(self) -> list[int]:
        return [profile.pk for profile in self.profiles]

    @property
    def identifier_hash(self) -> str:
        return hash_identifier(kind=self.kind, normalized=self.normalized)


def hash_identifier(*, kind: str, normalized: str) -> str:
    """Keyed HMAC-SHA256 of an identifier (GDPR_IDENTIFIER_HASH_KEY, else SECRET_KEY)."""
    secret = settings.GDPR_IDENTIFIER_HASH_KEY or settings.SECRET_KEY
    return salted_hmac(
        "whatsbot.gdpr.identifier", f"{kind}:{normalized}", secret=secret, algorithm="sha256"
    ).hexdigest()


def guess_kind(*, identifier: str) -> str:
    """Which kind of identifier a data officer typed (contact and visitor ids need --by)."""
    value = identifier.strip().removeprefix(_WHATSAPP_PREFIX)
    if value.isdigit() and len(value) <= _MAX_PROFILE_ID_DIGITS:
        return Kind.PROFILE_ID
    if _PHONE.match(value):
        return Kind.PHONE
    if _EMAIL.match(value):
        return Kind.EMAIL
    return Kind.EXTERNAL_ID


def find_subject(*, identifier: str, kind: str | None = None) -> Subject:
    """Every contact the identifier names, with all their identities; raises SubjectNotFound
    (having changed nothing about anyone) when there is none."""
    kind = kind or guess_kind(identifier=identifier)
    normalized, matches = _lookup(kind, identifier.strip())
    # A message accepted by a webhook but not recorded yet (a worker is behind, or the broker
    # is down) is recorded now, so what follows sees all of the person's data.
    record_pending_inbound()
    contacts = list(Contact.objects.filter(matches).distinct().order_by("pk"))
    if not contacts:
        raise SubjectNotFound(f"No contact matches this {Kind(kind).label.lower()}.")
    return _subject(kind, normalized, contacts)


def subject_of_profile(*, profile: ClientProfile) -> Subject:
    """The subject of one identity (the whole contact it belongs to), as the admin actions select it."""
    record_pending_inbound()  # as in find_subject
    contacts = list(Contact.objects.filter(identities=profile.pk))
    if not contacts:
        raise SubjectNotFound("This identity is gone.")
    return _subject(Kind.PROFILE_ID, str(profile.pk), contacts)


def _subject(kind: str, normalized: str, contacts: list[Contact]) -> Subject:
    profiles = list(ClientProfile.objects.filter(contact__in=contacts).select_related("contact").order_by("pk"))
    return Subject(kind=kind, normalized=normalized, contacts=contacts, profiles=profiles)


def _lookup(kind: str, value: str) -> tuple[str, Q]:
    """The normalised identifier and what a contact matching it looks like."""
    if kind in (Kind.PROFILE_ID, Kind.CONTACT_ID):
        if not value.isdigit():
            raise SubjectNotFound(f"A {Kind(kind).label.lower()} is a number, not {value!r}.")
        return value, Q(identities=int(value)) if kind == Kind.PROFILE_ID else Q(pk=int(value))
    if kind == Kind.PHONE:
        digits = re.sub(r"\D", "", value.removeprefix(_WHATSAPP_PREFIX))
        if not digits:
            raise SubjectNotFound("A phone number needs digits.")
        normalized = f"+{digits}"
        # Meta keys an identity on the wa_id (digits) or a BSUID, Twilio on `whatsapp:+…` or `+…`.
        external_ids = [digits, normalized, _WHATSAPP_PREFIX + normalized]
        return normalized, (
            Q(phone_number=normalized)
            | Q(identities__phone_number=normalized)
            | Q(identities__external_id__in=external_ids)
        )
    if kind == Kind.EMAIL:
        if not _EMAIL.match(value):
            raise SubjectNotFound(f"{value!r} is not an email address.")
        normalized = value.lower()
        return normalized, Q(email__iexact=normalized)
    if kind == Kind.VISITOR_ID:
        return value, Q(identities__provider=Provider.WEBCHAT, identities__external_id=value)
    return value, Q(identities__external_id=value)
