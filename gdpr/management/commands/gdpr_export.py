"""manage.py gdpr_export: everything held about one person, as JSON or a ZIP with the media files."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from gdpr.export import export_subject

from ._subject import add_subject_arguments, operator_name, resolve_subject


class Command(BaseCommand):
    help = (
        "Export everything held about one person (profiles with consent, conversations, messages with "
        "statuses, transcripts, media files, audit entries, and who received the data) as a JSON document "
        "(schema: gdpr/schemas/gdpr_export.schema.json), or a ZIP holding it and the media files. "
        "Exits with status 1 when no profile matches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_subject_arguments(parser)
        parser.add_argument("--format", choices=["json", "zip"], default="zip", help="Default: zip (JSON + media).")
        parser.add_argument(
            "--output",
            "-o",
            help="File to write, or - for standard output. Default: gdpr-export-<hash>-<time>.<format> in "
            "GDPR_EXPORT_DIR (outside the code checkout, owner-only; the name carries no personal data).",
        )
        parser.add_argument("--force", action="store_true", help="Overwrite --output if it exists.")

    def handle(self, *args: Any, **options: Any) -> None:
        subject = resolve_subject(options)
        fmt = options["format"]
        name = f"gdpr-export-{subject.identifier_hash[:12]}-{timezone.now():%Y%m%d-%H%M%S}.{fmt}"
        if options["output"] == "-":
            export_subject(subject=subject, out=sys.stdout.buffer, fmt=fmt, actor_label=operator_name())
            return
        path = Path(options["output"]) if options["output"] else _export_dir() / name
        if path.exists() and not options["force"]:
            raise CommandError(f"{path} exists. Choose another --output, or add --force to overwrite it.")
        # Owner-only from its first byte: it holds personal data.
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            document = export_subject(subject=subject, out=out, fmt=fmt, actor_label=operator_name())
        messages = sum(len(c["messages"]) for p in document["profiles"] for c in p["conversations"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Exported {len(document['profiles'])} profile(s) and {messages} message(s) to {path}. "
                "It holds personal data: send it to the person securely, then delete it here."
            )
        )


def _export_dir() -> Path:
    """GDPR_EXPORT_DIR, created owner-only (0700) if missing."""
    directory = Path(settings.GDPR_EXPORT_DIR).expanduser()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory
