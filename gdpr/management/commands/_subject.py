"""Arguments and lookup shared by the GDPR commands."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import CommandError, CommandParser

from gdpr.models import ErasureRecord
from gdpr.subjects import Subject, SubjectNotFound, find_subject

KIND_CHOICES = {
    "phone": ErasureRecord.IdentifierKind.PHONE,
    "email": ErasureRecord.IdentifierKind.EMAIL,
    "external-id": ErasureRecord.IdentifierKind.EXTERNAL_ID,
    "visitor-id": ErasureRecord.IdentifierKind.VISITOR_ID,
    "contact-id": ErasureRecord.IdentifierKind.CONTACT_ID,
    "profile-id": ErasureRecord.IdentifierKind.PROFILE_ID,
}


def add_subject_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "identifier",
        help=(
            "Who: a phone number (+15551234567, 15551234567 or whatsapp:+15551234567), an email address, a "
            "WhatsApp id or BSUID (US.1349…) or any provider id, or a channel identity (profile) id (the number "
            "in its admin URL). Whatever it is, the whole person is found: every contact it names, with all "
            "of their channel identities (WhatsApp via Meta and Twilio, SMS, web chat, simulator)."
        ),
    )
    parser.add_argument(
        "--by",
        choices=sorted(KIND_CHOICES),
        help=(
            "How to read IDENTIFIER when guessing is not enough: phone, email, external-id (a BSUID, wa_id or "
            "Twilio address), visitor-id (a web chat visitor), contact-id (a contact's number in the admin) or "
            "profile-id (an identity's). Short numbers are read as profile ids unless told otherwise."
        ),
    )


def resolve_subject(options: dict[str, Any]) -> Subject:
    try:
        return find_subject(identifier=options["identifier"], kind=KIND_CHOICES.get(options["by"]))
    except SubjectNotFound as exc:
        raise CommandError(
            f"{exc} Nothing was done. Check the identifier, or say what it is with "
            f"--by {'|'.join(sorted(KIND_CHOICES))}; contacts are listed in the admin."
        ) from exc


def operator_name() -> str:
    """Who ran the command, for the record: the login name of the operator."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""
