"""The logs of real processes carry no full phone number, email or message body.

gunicorn, a Celery worker and Celery beat run as production runs them (systemtests.harness: our
own PostgreSQL cluster and Redis on spare ports), at INFO, behind fake providers that refuse
every send with an error echoing the customer's number (Twilio 21211, a Graph error), as the real
ones do. A Meta and a Twilio customer write (with their email in the text); the worker answers,
fails to send and logs the providers' errors; then `gdpr_export`, `gdpr_erase` and
`purge_expired` run as management command processes. Every line any of them logged is searched.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from conversations.tests.helpers import JSONHandler
from systemtests.harness import (
    META_FIXTURE,
    ROOT,
    TEMPLATE_DATABASE,
    TWILIO_BUSINESS,
    TWILIO_FIXTURE,
    TWILIO_SID,
    LocalPostgres,
    LocalRedis,
    Stack,
    app_environment,
    free_port,
    meta_signature,
    migrated_postgres_template,
    postgres_binaries,
    run_directory,
    start_stack,
    twilio_signature,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

META_CUSTOMER = "15557770001"
TWILIO_CUSTOMER = "+15557770002"
EMAIL = "ada.logscan@example.com"
BODIES = ["LOGSCANBODY-meta", "LOGSCANBODY-twilio", "LOGSCANREPLY"]


class FakeProviders(JSONHandler):
    """OpenAI answers; Graph and Twilio refuse every send, naming the number, as they do."""

    seen: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(self.path)
        if self.path == "/v1/responses":
            self.answer_json(200, _model_answer())
        elif self.path.endswith("/messages"):  # Graph
            error = {"message": f"(#100) Invalid parameter: +{META_CUSTOMER} is not a WhatsApp user", "code": 100}
            self.answer_json(400, {"error": {**error, "type": "OAuthException", "fbtrace_id": "A1"}})
        elif self.path.endswith("/Messages.json"):  # Twilio
            message = f"The 'To' number whatsapp:{TWILIO_CUSTOMER} is not a valid phone number."
            self.answer_json(
                400,
                {
                    "code": 21211,
                    "message": message,
                    "more_info": "https://www.twilio.com/docs/errors/21211",
                    "status": 400,
                },
            )
        else:
            self.answer_json(404, {"error": "not faked"})

    def do_DELETE(self) -> None:
        self.seen.append(self.path)
        self.answer_json(404, {"error": {"message": "not found", "code": None}})

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.answer_json(404, {"error": {"message": "not found", "code": None}})


def _model_answer() -> dict:
    return {
        "id": "resp_logscan",
        "object": "response",
        "status": "completed",
        "model": "gpt-logscan",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": f"{BODIES[2]} for {EMAIL}", "annotations": []}],
            }
        ],
        "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
    }


@pytest.fixture
def logs(tmp_path_factory) -> Iterator[Path]:
    if postgres_binaries() is None or not shutil.which("redis-server"):
        pytest.skip("needs PostgreSQL's initdb/pg_ctl and redis-server")
    yield tmp_path_factory.mktemp("logscan")


def test_web_worker_beat_and_commands_log_no_number_email_or_body(logs: Path, tmp_path_factory) -> None:
    # Not under pytest's temporary directory: as root the cluster belongs to `postgres`.
    directory = Path(tempfile.mkdtemp(prefix="whatsbot-logscan-"))
    postgres, redis, stack = None, None, None
    fakes = ThreadingHTTPServer(("127.0.0.1", 0), FakeProviders)
    threading.Thread(target=fakes.serve_forever, daemon=True).start()
    try:
        template = migrated_postgres_template(run_directory(tmp_path_factory.getbasetemp()), logs / "migrate.log")
        postgres = LocalPostgres(directory, template=template)
        postgres.start()
        redis = LocalRedis(logs)  # its port taken now, not before the template's processes ran
        redis.start()
        port = free_port()
        env = app_environment(
            database_url=postgres.url(TEMPLATE_DATABASE),
            redis_url=redis.url,
            web_port=port,
            fake_port=fakes.server_address[1],
            scratch=logs,
            extra={"LOG_LEVEL": "INFO", "SEND_MAX_ATTEMPTS": "1", "PURGE_INTERVAL_SECONDS": "2"},
        )
        stack = start_stack(Stack(ROOT, sys.executable, "logscan", port, env, logs, web_workers=1, concurrency=4))
        base = f"http://127.0.0.1:{port}"
        post_meta_text(base, f"{BODIES[0]} write to {EMAIL}")
        post_twilio_text(base, f"{BODIES[1]} write to {EMAIL}")
        wait_for(lambda: _count(logs, "21211") and _count(logs, "WhatsApp user"), "both refusals logged", stack)
        commands = [
            ["gdpr_export", f"+{META_CUSTOMER}", "--format", "json", "-o", str(logs / "export.json")],
            ["gdpr_erase", TWILIO_CUSTOMER, "--yes"],
            ["purge_expired", "--days", "1", "--no-progress"],
        ]
        for number, command in enumerate(commands):
            with open(logs / f"command-{number}.log", "w") as log:  # its logging; stdout is its report
                subprocess.run(
                    [sys.executable, "manage.py", *command], cwd=ROOT, env={**env, "GDPR_EXPORT_DIR": str(logs)},
                    stdout=subprocess.DEVNULL, stderr=log, check=True, timeout=120,
                )  # fmt: skip
        # Beat's purge (every 2 s) run once more by the worker, on what the commands left.
        purges = _purges(stack)
        wait_for(lambda: _purges(stack) > purges, "a purge after the commands", stack)
    finally:
        if stack is not None:
            stack.stop()
        fakes.shutdown()
        if redis is not None:
            redis.stop()
        if postgres is not None and postgres.is_running():
            postgres.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)

    written = {path.name: path.read_text(errors="replace") for path in logs.glob("*.log")}
    everything = "\n".join(written.values())
    assert "21211" in everything and "+1555***02" in everything  # the refusal is logged, masked
    assert "Sending due task" in written["logscan-beat.log"] and "POST /webhooks/" in written["logscan-web.log"]
    leaks = {
        name: sorted(set(re.findall(r"5557770\d{3}|[\w.+-]*logscan@example\.com|LOGSCAN\w+", text)))
        for name, text in written.items()
    }
    assert {name: found for name, found in leaks.items() if found} == {}


def post_meta_text(base: str, text: str) -> None:
    body = json.loads(META_FIXTURE.read_text())
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0].update(wa_id=META_CUSTOMER, user_id="US.7770000000000000001")
    value["messages"][0].update({"from": META_CUSTOMER, "from_user_id": "US.7770000000000000001"})
    value["messages"][0].update(id="wamid.LOGSCAN1", text={"body": text})
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(raw)}
    assert requests.post(f"{base}/webhooks/meta/", data=raw, headers=headers, timeout=10).status_code == 200


def post_twilio_text(base: str, text: str) -> None:
    params = json.loads(TWILIO_FIXTURE.read_text())
    params.update(
        From=f"whatsapp:{TWILIO_CUSTOMER}",
        WaId=TWILIO_CUSTOMER[1:],
        To=TWILIO_BUSINESS,
        Body=text,
        AccountSid=TWILIO_SID,
    )
    params.pop("ChannelMetadata", None)
    url = f"{base}/webhooks/twilio/"
    headers = {"X-Twilio-Signature": twilio_signature(url, params), "Content-Type": "application/x-www-form-urlencoded"}
    assert requests.post(url, data=urlencode(params), headers=headers, timeout=10).status_code == 200


def wait_for(condition, what: str, stack: Stack, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline or not stack.alive():
            raise AssertionError(f"{what}: not within {seconds} s (logs in {stack.logs})")
        time.sleep(0.5)


def _count(logs: Path, text: str) -> int:
    return sum(path.read_text(errors="replace").count(text) for path in logs.glob("*.log"))


def _purges(stack: Stack) -> int:
    """Runs of beat's purge the worker finished (Celery's line for each)."""
    lines = stack.log("worker").read_text(errors="replace").splitlines()
    return sum("gdpr.tasks.purge_expired_data[" in line and " succeeded in " in line for line in lines)
