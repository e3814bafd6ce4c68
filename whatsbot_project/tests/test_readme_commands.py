"""Every `manage.py` command README.md writes runs as written, on a fresh clone.

The tracked files are copied to a temporary directory (no .env, no database), `make .env` writes
the development settings as `make run` does on a first start, `manage.py run` migrates the
database and serves, and then each command is taken from README.md (code blocks and inline code)
and run in an environment without DEBUG, SECRET_KEY, DATABASE_URL or any other setting. It must
exit 0, without a traceback.

What the test does beyond the README's text, and why:
- `python` and a bare `manage.py` are run with the project's Python (`.venv/bin/python`, as the
  README says: the copy's `.venv` is a link to this virtualenv);
- the demo data is seeded (the README's `seed_demo`) again before a command that names a person
  when an erasure or `seed_demo --remove` ran since the last seeding: the examples name people of
  the demo data;
- `manage.py run` (`make run`) serves with the webhook capture on (`WEBHOOK_CAPTURE_HOURS=1`, as
  the README says for replays) on a free port: the `replay_webhook` commands need a capture and a
  running app. Its `ID` placeholder becomes the capture's id, and `http://127.0.0.1:8000` the
  address of that app;
- the erasure that asks for confirmation is answered "erase" on a terminal, and `createsuperuser`'s
  prompts a name, an email and a password; a `USERNAME` placeholder becomes that name.
Excluded: `manage.py run`, which starts the server (the test starts it itself, above).

`manage.py run` itself is checked on the way (one process serving HTTP with its own worker):
it prints the offline responder, the first admin account and its two-factor set-up code, its
in-process worker answers the captured webhook, and SIGTERM stops it cleanly (exit 0).
"""

from __future__ import annotations

import json
import os
import pty
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest
import requests

from systemtests.harness import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
# What a developer's shell has besides settings: nothing here configures whatsbot.
SHELL_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR", "USER", "LOGNAME", "PYENV_ROOT")
# The commands that start a server: the test does not run them from the README.
SERVER_COMMANDS = {"run"}
# Commands whose arguments name a person of the demo data.
SUBJECT_COMMANDS = {"gdpr_export", "gdpr_erase"}
README_APP_URL = "http://127.0.0.1:8000"
# The account the README's `createsuperuser` makes.
SUPERUSER = "readme-admin"


def readme_commands() -> list[str]:
    """Every `manage.py` command line of README.md, in order, once each (comments dropped)."""
    readme = (ROOT / "README.md").read_text()
    commands: list[str] = []
    code = re.compile(r"^```[^\n]*\n(?P<block>.*?)^```|`(?P<inline>[^`\n]+)`", flags=re.MULTILINE | re.DOTALL)
    for match in code.finditer(readme):
        lines = match["block"].splitlines() if match["block"] is not None else [match["inline"]]
        commands += [re.sub(r"\s+#.*$", "", line).strip() for line in lines if re.search(r"manage\.py \w", line)]
    return list(dict.fromkeys(commands))


def fresh_environment(**extra: str) -> dict[str, str]:
    return {**{name: os.environ[name] for name in SHELL_VARIABLES if name in os.environ}, **extra}


def fresh_clone(target: Path) -> Path:
    """The checkout's tracked files (as they are on disk) in `target`, with this virtualenv as `.venv`."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in listed.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(VENV, target_is_directory=True)
    return target


class Checkout:
    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, args: list[str], *, answer: str | None = None, **extra: str) -> subprocess.CompletedProcess:
        """Run in the checkout with a fresh environment; `answer` is typed on a terminal."""
        # Exports go to the user's data folder by default: here, to the throwaway copy's.
        env = fresh_environment(XDG_DATA_HOME=str(self.path / ".data"), **extra)
        if answer is None:
            return subprocess.run(
                args, cwd=self.path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
            )
        terminal, terminal_end = pty.openpty()
        try:
            process = subprocess.Popen(
                args, cwd=self.path, env=env, stdin=terminal_end, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            os.write(terminal, answer.encode())
            stdout, stderr = process.communicate(timeout=120)
        finally:
            os.close(terminal_end)
            os.close(terminal)
        return subprocess.CompletedProcess(args, process.returncode, stdout.decode(), stderr.decode())

    def create_superuser(self, args: list[str]) -> subprocess.CompletedProcess:
        """`createsuperuser` on a terminal of its own (its password prompt reads /dev/tty), each
        prompt answered when it shows, as a person would."""
        password = "Tq9" + secrets.token_urlsafe(16)
        child = pexpect.spawn(
            args[0], args[1:], cwd=str(self.path), env=fresh_environment(), encoding="utf-8", timeout=60
        )
        for prompt, reply in (
            ("Username", SUPERUSER),
            ("Email address", "readme-admin@example.com"),
            ("Password", password),
            ("Password \\(again\\)", password),
        ):
            child.expect(prompt)
            child.sendline(reply)
        child.expect(pexpect.EOF)
        child.close()
        return subprocess.CompletedProcess(args, child.exitstatus, child.before or "", "")

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return self.run([".venv/bin/python", "manage.py", *args])


def as_run(command: str, *, capture_id: str, app_url: str) -> list[str]:
    """The README's command line as the test runs it (see the module docstring)."""
    args = shlex.split(command.replace(README_APP_URL, app_url))
    if args[0] == "manage.py":
        args = ["python", *args]
    if args[0] == "python":
        args[0] = ".venv/bin/python"
    if args[2] == "replay_webhook":
        args = [capture_id if arg == "ID" else arg for arg in args]
    return [SUPERUSER if arg == "USERNAME" else arg for arg in args]


def assert_ok(result: subprocess.CompletedProcess, what: str) -> None:
    output = f"$ {what}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, output
    assert "Traceback" not in result.stdout + result.stderr, output


@pytest.fixture
def checkout(tmp_path):
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.skip("needs make and git, as the README does")
    if sys.prefix == sys.base_prefix:
        pytest.skip("needs the project's virtualenv (.venv), as the README does")
    return Checkout(fresh_clone(tmp_path / "whatsbot"))


@pytest.fixture
def developer_checkout(checkout):
    """The checkout after `make run`'s first step: `make .env`."""
    result = checkout.run(["make", ".env"])
    assert result.returncode == 0, result.stdout + result.stderr
    return checkout


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    log: Path  # its stdout and stderr

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def running_app(developer_checkout, tmp_path):
    """`manage.py run` (what `make run` starts; it migrates the new database first), keeping raw
    webhooks for the replays."""
    checkout = developer_checkout
    port = free_port()
    log_path = tmp_path / "run.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [".venv/bin/python", "manage.py", "run", "--port", str(port)],
        cwd=checkout.path,
        env=fresh_environment(WEBHOOK_CAPTURE_HOURS="1"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}/healthz/", timeout=1)
                break
            except requests.ConnectionError:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        yield RunningApp(url, process, log_path)
    finally:
        # The test stops it itself; here only after a failure (also one before it answered).
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def test_make_env_writes_the_development_settings_once(checkout):
    result = checkout.run(["make", ".env"])
    assert result.returncode == 0, result.stdout + result.stderr
    written = (checkout.path / ".env").read_text()

    assert re.search(r"^DEBUG=true$", written, flags=re.MULTILINE)
    assert re.search(r"^SECRET_KEY=\S{40,}$", written, flags=re.MULTILINE)
    assert ".env" in (checkout.path / ".gitignore").read_text().splitlines()

    (checkout.path / ".env").write_text(written + "# edited by hand\n")
    assert checkout.run(["make", ".env"]).returncode == 0
    assert (checkout.path / ".env").read_text() == written + "# edited by hand\n"  # never overwritten


def test_every_manage_py_command_of_the_readme_runs_as_written(developer_checkout, running_app, tmp_path):
    checkout = developer_checkout
    commands = readme_commands()

    # One webhook for the app to capture, sent the way the README replays a saved one.
    from conversations.providers.simulator import build_message_body

    body = build_message_body(
        message_id="wamid.SIM.readme1",
        customer_id="SIM.readme01",
        phone_number="+15550009999",
        name="Readme",
        kind="text",
        content={"body": "Hello from the README test"},
    )
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"provider": "meta", "path": "/webhooks/meta/", "body": body.decode()}))
    assert_ok(checkout.manage("replay_webhook", "--file", str(seed), "--url", running_app.url), "capture one webhook")

    ran = []
    demo_complete = False
    capture_id = ""  # the README lists the captures before it names one (`ID`)
    for command in commands:
        args = as_run(command, capture_id=capture_id, app_url=running_app.url)
        name = args[2]
        if name in SERVER_COMMANDS:
            continue
        if name in SUBJECT_COMMANDS and not demo_complete:
            assert_ok(checkout.manage("seed_demo"), "manage.py seed_demo (before a command that names a person)")
        erases = name == "gdpr_erase" and "--dry-run" not in args
        confirm = erases and not {"--yes", "-y"} & set(args)
        if name == "createsuperuser":
            result = checkout.create_superuser(args)
        else:
            result = checkout.run(args, answer="erase\n" if confirm else None)
        assert_ok(result, command)
        ran.append(name)
        if name == "replay_webhook" and "--list" in args:
            capture_id = re.search(r"^\s*(\d+)\s", result.stdout, flags=re.MULTILINE).group(1)
        # Seeding again only after an erasure (or a removal) keeps the test to the commands it checks.
        if name == "seed_demo":
            demo_complete = "--remove" not in args
        elif name in SUBJECT_COMMANDS:
            demo_complete = not erases

    assert sorted(set(ran)) == [
        "check",
        "createsuperuser",
        "eval_knowledge",
        "gdpr_erase",
        "gdpr_export",
        "issue_two_factor_setup_code",
        "purge_expired",
        "replay_webhook",
        "seed_demo",
    ]
    assert len(ran) == len([c for c in commands if as_run(c, capture_id="1", app_url="")[2] not in SERVER_COMMANDS])
    check_run_answered_with_its_own_worker_and_stops_cleanly(running_app)


# A reply to a replayed webhook, stored and sent by the worker `manage.py run` holds, whichever way
# it ran the reply work (bootsteps.LocalRuns). The simulator's customer is a Meta one: its
# transport is the simulator, which speaks Meta's wire format.
ANSWERED = re.compile(r"Sent message \d+ via meta\.")


def check_run_answered_with_its_own_worker_and_stops_cleanly(app: RunningApp) -> None:
    """`manage.py run`: one process serving HTTP with its own worker (it answered the webhooks
    the replays sent), which SIGTERM stops cleanly."""
    deadline = time.monotonic() + 30  # the burst window (2 s) has long passed by now
    while not ANSWERED.search(app.output()) and time.monotonic() < deadline:
        time.sleep(0.1)
    app.process.send_signal(signal.SIGTERM)
    app.process.wait(timeout=30)

    output = app.output()
    assert app.process.returncode == 0, output
    assert "OFFLINE RESPONDER" in output
    assert "created the local admin account 'admin'" in output
    assert re.search(r"two-factor set-up code [A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4} ", output)
    assert ANSWERED.search(output), output
    assert "whatsbot stopped." in output
