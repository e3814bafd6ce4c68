"""manage.py purge_expired: delete what is older than its retention period. Safe for cron or beat."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from gdpr.retention import purge_expired


class Command(BaseCommand):
    help = (
        "Delete messages and their media older than DATA_RETENTION_DAYS (unset: messages are kept), "
        "conversations left empty, and webhook dedup ids older than PROCESSED_MESSAGE_RETENTION_DAYS "
        "(default 8: Meta retries a delivery for up to 7 days). Works in batches of PURGE_BATCH_SIZE rows, "
        "so it runs in flat memory next to live traffic; running it twice is harmless."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")
        parser.add_argument("--days", type=int, help="Message retention in days (overrides DATA_RETENTION_DAYS).")
        parser.add_argument(
            "--processed-days",
            type=int,
            help="Dedup-id retention in days (overrides PROCESSED_MESSAGE_RETENTION_DAYS).",
        )
        parser.add_argument("--batch-size", type=int, help="Rows per transaction (default PURGE_BATCH_SIZE).")
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bars (they show only on a terminal anyway)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("days", "processed_days", "batch_size"):
            if options[name] is not None and options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1.")
        if options["days"] is None and settings.DATA_RETENTION_DAYS is None:
            self.stdout.write("DATA_RETENTION_DAYS is unset: messages are kept (set it, or pass --days, to purge).")

        def progress(desc: str, total: int) -> tqdm[NoReturn]:
            return tqdm(
                total=total, desc=desc, unit="rows", disable=True if options["no_progress"] else None, file=sys.stderr
            )

        summary = purge_expired(
            retention_days=options["days"],
            processed_days=options["processed_days"],
            dry_run=options["dry_run"],
            batch_size=options["batch_size"],
            progress=progress,
        )
        verb = "Would delete" if summary.dry_run else "Deleted"
        cutoff = f"created before {summary.message_cutoff:%Y-%m-%d %H:%M:%S %Z}" if summary.message_cutoff else "none"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb}: {summary.messages} messages ({cutoff}), {summary.attachments} attachments, "
                f"{summary.files} media files, {summary.conversations} empty conversations, "
                f"{summary.processed_ids} dedup ids (received before {summary.processed_cutoff:%Y-%m-%d %H:%M:%S %Z}), "
                f"{summary.remote_copies} copies at processors (OpenAI, Twilio, Meta) queued for deletion."
            )
        )
