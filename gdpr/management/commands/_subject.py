"""Arguments and lookup shared by the GDPR commands."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import CommandError, CommandParser

from gdpr.models import ErasureRecord
from gdpr.subjects import Subject, SubjectNotFound, find_subject

KIND_CHOICES = {
    "phone": ErasureRecord.IdentifierKind.PHONE,
    "external-id": ErasureRecord.IdentifierKind.EXTERNAL_ID,
    "profile-id": ErasureRecord.IdentifierKind.PROFILE_ID,
}


def add_subject_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "identifier",
        help=(
            "Who: a phone number (+15551234567, 15551234567 or whatsapp:+15551234567; finds every profile "
            "with that number), a WhatsApp id or BSUID (US.1349…), or a profile id (the number in the admin URL)."
        ),
    )
    parser.add_argument(
        "--by",
        choices=sorted(KIND_CHOICES),
        help="How to read IDENTIFIER when guessing is not enough (short numbers are read as profile ids).",
    )


def resolve_subject(options: dict[str, Any]) -> Subject:
    try:
        return find_subject(identifier=options["identifier"], kind=KIND_CHOICES.get(options["by"]))
    except SubjectNotFound as exc:
        raise CommandError(
            f"{exc} Nothing was done. Check the identifier, or say what it is with "
            "--by phone|external-id|profile-id; client profiles are listed in the admin."
        ) from exc


def operator_name() -> str:
    """Who ran the command, for the record: the login name of the operator."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""
