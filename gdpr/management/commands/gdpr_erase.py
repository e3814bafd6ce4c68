"""manage.py gdpr_erase: erase one person here and at the processors (OpenAI, Twilio, Meta)."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gdpr.erasure import erase_subject, plan_erasure

from ._subject import add_subject_arguments, operator_name, resolve_subject


class Command(BaseCommand):
    help = (
        "Erase everything held about one person: profiles, conversations, messages, attachments and media "
        "files, audit entries, webhook captures and the admin history of their objects, and the copies kept "
        "by OpenAI (conversation items, then the conversation; stored responses), Twilio (message resources "
        "and their media) and Meta (media objects). "
        "Leaves an erasure record without personal data. Asks for confirmation unless --yes; --dry-run "
        "only lists what would go. Exits with status 1 when no profile matches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_subject_arguments(parser)
        parser.add_argument("--dry-run", action="store_true", help="List what would be erased; change nothing.")
        parser.add_argument("--yes", "-y", action="store_true", help="Do not ask for confirmation (for scripts).")
        parser.add_argument(
            "--operator", help="Who runs the erasure, for the erasure record. Default: your login name."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        subject = resolve_subject(options)
        plan = plan_erasure(subject=subject)
        self.stdout.write(f"Found {len(plan.identities)} identit(ies) of this person:")
        for identity in plan.identities:
            self.stdout.write(f"  {identity}")
        self.stdout.write("Would be erased here:")
        for kind, count in plan.counts.items():
            self.stdout.write(f"  {kind:<18} {count}")
        self.stdout.write(f"Copies at processors to delete there ({len(plan.remote)}):")
        for kind, remote_id in plan.remote:
            self.stdout.write(f"  {kind:<26} {remote_id}")
        if plan.remote_counts.get("openai_conversation"):
            self.stdout.write("  (and every item of those OpenAI conversations, listed when they are deleted)")
        if options["dry_run"]:
            self.stdout.write(self.style.WARNING("Dry run: nothing was erased."))
            return
        if not options["yes"]:
            if not sys.stdin.isatty():
                raise CommandError("Not a terminal, so no one can confirm: run again with --yes to erase.")
            answer = input("Erasure cannot be undone. Type 'erase' to go on: ")
            if answer.strip().lower() != "erase":
                raise CommandError("Not confirmed; nothing was erased.")
        record = erase_subject(subject=subject, actor_label=options["operator"] or operator_name())
        self.stdout.write(self.style.SUCCESS(f"Erased. Erasure record #{record.pk}: {record.counts}"))
        deletions = list(record.remote_deletions.all())
        waiting = [d for d in deletions if d.status == d.Status.PENDING]
        self.stdout.write(f"Copies at processors: {len(deletions) - len(waiting)} done, {len(waiting)} waiting.")
        for deletion in deletions:
            self.stdout.write(f"  {deletion.get_kind_display():<32} {deletion.remote_id:<40} {deletion.status}")
            if deletion.status == deletion.Status.PENDING and deletion.last_error:
                self.stdout.write(f"    waiting: {deletion.last_error}")
            if deletion.status == deletion.Status.FAILED:
                self.stderr.write(f"    failed: {deletion.last_error}. Delete it by hand at the processor.")
        if waiting:
            self.stdout.write(
                self.style.WARNING(
                    f"{len(waiting)} remote deletion(s) are retried by a Celery task until the processor accepts "
                    "them (a worker and beat must run). Follow them in the admin under Remote deletions."
                )
            )
