"""Finding "one person" from what a data officer has: a phone number, a WhatsApp id or BSUID, a profile id.

One person may have several profiles (one per provider and address: Meta, Twilio WhatsApp,
Twilio SMS); a phone number finds all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django.utils.crypto import salted_hmac

from conversations.services.inbound import record_pending_inbound
from gdpr.models import ErasureRecord
from profiles.models import ClientProfile

_WHATSAPP_PREFIX = "whatsapp:"
_PHONE = re.compile(r"^\+?[\d\s().-]{8,24}$")
# Profile ids are short; anything with 8 or more digits is read as a phone number.
_MAX_PROFILE_ID_DIGITS = 7


class SubjectNotFound(LookupError):
    """No profile matches the identifier."""


@dataclass(frozen=True)
class Subject:
    kind: str  # an ErasureRecord.IdentifierKind value
    normalized: str  # "+15551234567", "US.123…", "42"
    profiles: list[ClientProfile]

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
    """Which kind of identifier a data officer typed."""
    value = identifier.strip().removeprefix(_WHATSAPP_PREFIX)
    if value.isdigit() and len(value) <= _MAX_PROFILE_ID_DIGITS:
        return ErasureRecord.IdentifierKind.PROFILE_ID
    if _PHONE.match(value):
        return ErasureRecord.IdentifierKind.PHONE
    return ErasureRecord.IdentifierKind.EXTERNAL_ID


def find_subject(*, identifier: str, kind: str | None = None) -> Subject:
    """All profiles of the person the identifier names; raises SubjectNotFound when there are none."""
    kind = kind or guess_kind(identifier=identifier)
    value = identifier.strip()
    # A message accepted by a webhook but not recorded yet (a worker is behind, or the broker
    # is down) is recorded now, so what follows sees all of the person's data.
    record_pending_inbound()
    if kind == ErasureRecord.IdentifierKind.PROFILE_ID:
        if not value.isdigit():
            raise SubjectNotFound(f"A profile id is a number, not {value!r}.")
        normalized, matches = value, Q(pk=int(value))
    elif kind == ErasureRecord.IdentifierKind.PHONE:
        digits = re.sub(r"\D", "", value.removeprefix(_WHATSAPP_PREFIX))
        if not digits:
            raise SubjectNotFound("A phone number needs digits.")
        normalized = f"+{digits}"
        # Meta keys a profile on the wa_id (digits) or a BSUID, Twilio on `whatsapp:+…` or `+…`.
        matches = Q(phone_number=normalized) | Q(external_id__in=[digits, normalized, _WHATSAPP_PREFIX + normalized])
    else:
        normalized, matches = value, Q(external_id=value)
    profiles = list(ClientProfile.objects.filter(matches).order_by("pk"))
    if not profiles:
        raise SubjectNotFound(f"No client profile matches this {ErasureRecord.IdentifierKind(kind).label.lower()}.")
    return Subject(kind=kind, normalized=normalized, profiles=profiles)


def subject_of_profile(*, profile: ClientProfile) -> Subject:
    """The subject of one profile, as the admin actions select it."""
    record_pending_inbound()  # as in find_subject
    return Subject(kind=ErasureRecord.IdentifierKind.PROFILE_ID, normalized=str(profile.pk), profiles=[profile])
