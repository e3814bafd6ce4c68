"""`manage.py run`: the whole app in one process, for a laptop or a small install."""

from __future__ import annotations

import secrets
import socket
import threading

from celery import current_app as celery_app
from celery.beat import EmbeddedService
from daphne.cli import CommandLineInterface
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.two_factor import issue_setup_code


class Command(BaseCommand):
    help = (
        "Migrate, then serve HTTP and websockets with daphne, with a Celery worker and beat "
        "running in this same process (threads). Stops cleanly on Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default: 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Port to listen on (default: 8000).")
        parser.add_argument(
            "--concurrency",
            type=int,
            default=16,
            help="Worker threads for Celery tasks; model calls wait on I/O, so dozens are fine (default: 16).",
        )
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="Do not start the in-process worker and beat (use when separate Celery workers run on Redis).",
        )

    def handle(self, *args, host: str, port: int, concurrency: int, no_worker: bool, **options):
        call_command("migrate", interactive=False, verbosity=0)  # also runs the system checks
        call_command("collectstatic", interactive=False, verbosity=0)  # admin and inbox assets
        first_admin = self._create_first_admin()
        worker = beat = None
        if not no_worker:
            worker = celery_app.WorkController(
                # Its own node name: claims carry it, and a separate `celery worker` on this host
                # (default name celery@host) must not be taken for this one (services/workers.py).
                hostname=f"run@{socket.gethostname()}",
                pool_cls="threads",
                concurrency=concurrency,
                without_heartbeat=True,
                without_mingle=True,
                without_gossip=True,
            )
            threading.Thread(target=worker.start, name="celery-worker", daemon=True).start()
            beat = EmbeddedService(celery_app, thread=True)
            beat.start()
        # The one setting changed at run time, and only when unset: the simulator posts its signed
        # webhooks to this very server, whose address is known only now, from --host and --port
        # (the settings were read before this command was parsed).
        settings.SIMULATOR_WEBHOOK_URL = settings.SIMULATOR_WEBHOOK_URL or f"http://{host}:{port}/webhooks/meta/"
        self._print_banner(host, port, worker is not None)
        if first_admin:
            username, password, setup_code = first_admin
            self.stdout.write(
                self.style.WARNING(
                    f"  First run: created the local admin account '{username}' with password '{password}'\n"
                    f"  and two-factor set-up code {setup_code} (its first login sets up an authenticator app).\n"
                    "  They are shown only this once: change the password in the admin (or run createsuperuser).\n"
                )
            )
        try:
            # Blocks until Ctrl-C; Twisted handles the signal and returns here.
            CommandLineInterface().run(
                ["--bind", host, "--port", str(port), settings.ASGI_APPLICATION.replace(".application", ":application")]
            )
        finally:
            if beat is not None:
                beat.stop()
            if worker is not None:
                worker.stop(in_sighandler=False)
            self.stdout.write("whatsbot stopped.")

    def _create_first_admin(self) -> tuple[str, str, str] | None:
        """On a fresh development install, a staff login to reach the admin and the live inbox:
        its name, password and two-factor set-up code."""
        User = get_user_model()
        if not settings.DEBUG or User.objects.exists():
            return None
        password = secrets.token_urlsafe(12)
        admin = User.objects.create_superuser("admin", email="", password=password)
        return "admin", password, issue_setup_code(user=admin, by=None, by_label="manage.py run (first run)")

    def _print_banner(self, host: str, port: int, has_worker: bool) -> None:
        base = f"http://{host}:{port}"
        broker = settings.CELERY_BROKER_URL.split("@")[-1]
        lines = [
            "",
            f"whatsbot is starting on {base}",
            f"  simulator:        {base}/simulator/",
            f"  live inbox:       {base}/live/",
            f"  web chat widget:  {base}/chat/",
            f"  admin:            {base}/admin/",
            f"  Meta webhook:     {base}/webhooks/meta/",
            f"  Twilio webhooks:  {base}/webhooks/twilio/  and  {base}/webhooks/twilio/status/",
            f"  database:         {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}",
            f"  task queue:       {broker} ({'worker in this process' if has_worker else 'external workers'})",
            "  model:            "
            + (
                f"OpenAI {settings.OPENAI_MODEL}"
                if settings.OPENAI_API_KEY
                else "OFFLINE RESPONDER (no OPENAI_API_KEY)"
            ),
            "",
        ]
        self.stdout.write("\n".join(lines))
