"""The gevent worker: a live-inbox event must not stop every task's database calls, and a
greenlet's failure is logged like any other error."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # each test starts a Python process


@pytest.mark.skipif(not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), reason="a real database")
def test_under_gevent_a_running_live_sender_loop_leaves_task_database_calls_working():
    # The worker's own set-up (monkey patching, worker_init), then the live sender's loop in a
    # green thread, then a database call as a task makes it: in a process of its own.
    script = textwrap.dedent(
        """
        from gevent import monkey; monkey.patch_all()
        import asyncio, threading, time
        import django; django.setup()
        from celery import signals
        import whatsbot_project.celery
        signals.worker_init.send(sender=None)
        loop = asyncio.new_event_loop()
        def run():
            asyncio.set_event_loop(loop)
            loop.run_until_complete(asyncio.sleep(5))
        threading.Thread(target=run, daemon=True).start()
        time.sleep(0.2)
        from django.db import connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            print("database call:", cursor.fetchone()[0])
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "whatsbot_project.settings", "PYTHONPATH": str(ROOT)}
    # The call needs a server, not the app's tables: the maintenance database always exists (the
    # configured one may not: the suite's are test_… copies).
    env["DATABASE_URL"] = urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path="/postgres"))
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert "database call: 1" in done.stdout, done.stderr[-2000:]


def test_under_gevent_a_greenlet_keeps_its_database_connection_when_the_live_sender_starts():
    # The worker's set-up, a greenlet that opens a transaction, then the live sender's loop
    # starting in a green thread (as when Redis is down and presence unknown), then the same
    # greenlet's next statement: same connection, same transaction.
    script = textwrap.dedent(
        """
        from gevent import monkey; monkey.patch_all()
        import asyncio, threading
        import gevent
        import django; django.setup()
        from celery import signals
        import whatsbot_project.celery
        signals.worker_init.send(sender=None)
        from django.db import connections, transaction
        def in_a_transaction():
            with transaction.atomic():
                before = connections["default"]
                loop = asyncio.new_event_loop()
                threading.Thread(target=lambda: (asyncio.set_event_loop(loop), loop.run_forever()), daemon=True).start()
                gevent.sleep(0.2)
                return before is connections["default"] and connections["default"].in_atomic_block
        print("same connection:", gevent.spawn(in_a_transaction).get())
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "whatsbot_project.settings", "PYTHONPATH": str(ROOT)}
    env |= {"DEBUG": "true", "DATABASE_URL": "sqlite://:memory:"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert "same connection: True" in done.stdout, done.stdout[-1000:] + done.stderr[-2000:]


def test_under_gevent_with_json_logs_a_greenlets_failure_is_one_record_without_its_arguments():
    # A worker's logging set-up (LOG_FORMAT=json), then a greenlet that fails on a customer's text.
    script = textwrap.dedent(
        """
        from gevent import monkey; monkey.patch_all()
        import gevent
        import django; django.setup()
        from celery import signals
        import whatsbot_project.celery
        signals.setup_logging.send(sender=None)
        def answer(text):
            raise ValueError("no answer")
        gevent.spawn(answer, "my secret order").join()
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "whatsbot_project.settings", "PYTHONPATH": str(ROOT)}
    env |= {"LOG_FORMAT": "json", "DEBUG": "true", "DATABASE_URL": "sqlite://:memory:"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)

    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line one JSON object
    failures = [record for record in records if "ValueError: no answer" in json.dumps(record)]
    assert len(failures) == 1, lines
    assert "failed with ValueError" in failures[0]["message"]
    assert "my secret order" not in done.stdout + done.stderr
