"""`manage.py run` (what `make run` starts): one process serving HTTP with its own worker."""

import hashlib
import hmac
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from systemtests.harness import free_port

from .helpers import meta_body

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# The reply was stored and its send tried (Graph is unreachable here), whichever way the worker
# ran the reply work: a task, or in its own pool straight from the recording (bootsteps.LocalRuns).
ANSWERED = re.compile(r"Send of message \d+ failed \(connection_refused")


def test_run_serves_answers_a_webhook_with_its_own_worker_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "WHATSAPP_APP_SECRET": "run-secret",
        "WHATSAPP_GRAPH_URL": "http://127.0.0.1:9",  # nothing listens: sends fail, the reply is stored
        "MEDIA_ROOT": str(tmp_path / "media"),
        "PYTHONUNBUFFERED": "1",  # its log lines as they are written: the test waits for one
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz/", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        body = meta_body("text")
        signature = "sha256=" + hmac.new(b"run-secret", body, hashlib.sha256).hexdigest()
        response = requests.post(
            f"http://127.0.0.1:{port}/webhooks/meta/",
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
            timeout=5,
        )
        assert response.status_code == 200
        # The burst window (2 s), then the in-process worker answers.
        deadline = time.monotonic() + 30
        while not ANSWERED.search("".join(lines)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        reader.join(timeout=10)

    output = "".join(lines)
    assert process.returncode == 0, output
    assert "OFFLINE RESPONDER" in output
    assert "created the local admin account 'admin'" in output
    assert re.search(r"two-factor set-up code [A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4} ", output)
    assert ANSWERED.search(output), output
    assert "whatsbot stopped." in output
