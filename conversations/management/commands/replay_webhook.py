"""`manage.py replay_webhook`: send a captured (or saved) webhook through the live code path."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from conversations.models import CapturedWebhook, Provider
from conversations.services.captures import replay_webhook


class Command(BaseCommand):
    help = (
        "Replay a webhook request against a running whatsbot, re-signed with this machine's "
        "WHATSAPP_APP_SECRET / TWILIO_AUTH_TOKEN. Take it from a capture (WEBHOOK_CAPTURE_HOURS) "
        "by id, or from a file written by --save. Use --fresh-ids to get past the dedup gate."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("capture_id", nargs="?", type=int, help="Id of a CapturedWebhook (see the admin).")
        source.add_argument("--file", type=Path, help="A JSON file saved with --save (provider, path, body).")
        source.add_argument(
            "--list", action="store_true", dest="list_captures", help="List the captures held, newest first."
        )
        parser.add_argument(
            "--url",
            default="",
            help="Base URL of the running app (default: PUBLIC_BASE_URL, else http://127.0.0.1:8000).",
        )
        parser.add_argument("--fresh-ids", action="store_true", help="Give the messages new ids before sending.")
        parser.add_argument("--save", type=Path, help="Write the capture to this file instead of sending it.")

    def handle(self, *args, capture_id, file, list_captures, url, fresh_ids, save, **options):
        if list_captures:
            for capture in CapturedWebhook.objects.all()[:50]:
                self.stdout.write(
                    f"{capture.pk:>6}  {capture.received_at:%Y-%m-%d %H:%M:%S}  {capture.provider:<7} {capture.path}"
                )
            return
        provider, path, body = self._load(capture_id, file)
        if save:
            save.write_text(json.dumps({"provider": provider, "path": path, "body": body.decode()}, indent=2))
            self.stdout.write(self.style.SUCCESS(f"Saved to {save}. It holds personal data: delete it when done."))
            return
        base_url = url or settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000"
        try:
            status = replay_webhook(provider=provider, path=path, body=body, base_url=base_url, fresh_ids=fresh_ids)
        except OSError as exc:
            raise CommandError(f"Could not reach {base_url}: {exc}. Is the app running there?") from exc
        style = self.style.SUCCESS if status < 300 else self.style.ERROR
        self.stdout.write(style(f"{base_url}{path} answered {status}."))
        if status >= 300:
            raise CommandError("The app refused the replay (403: the secrets here differ from the app's).")

    def _load(self, capture_id: int | None, file: Path | None) -> tuple[str, str, bytes]:
        if file is not None:
            try:
                saved = json.loads(file.read_text())
                provider, path, body = saved["provider"], saved["path"], saved["body"].encode()
            except (OSError, ValueError, KeyError) as exc:
                raise CommandError(f"{file} is not a file written by --save: {exc}") from exc
            if provider not in Provider.values:
                raise CommandError(f"Unknown provider {provider!r} in {file}.")
            return provider, path, body
        capture = CapturedWebhook.objects.filter(pk=capture_id).first()
        if capture is None:
            raise CommandError(f"No capture {capture_id}. `replay_webhook --list` shows what is held.")
        return capture.provider, capture.path, bytes(capture.body)
