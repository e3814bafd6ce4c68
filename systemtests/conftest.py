"""The system the fault suite breaks: our own PostgreSQL cluster and Redis on spare ports, the
fake providers, and gunicorn + a Celery worker + Celery beat configured only by environment
variables. Started once per session; every process is stopped at the end, also after a failure.

The table of results is printed at the end of the session, and written into bench/RESULTS.md
when FAULTS_WRITE_RESULTS=1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from systemtests.harness import (
    ROOT,
    LocalPostgres,
    LocalRedis,
    Stack,
    app_environment,
    free_port,
    load_average,
    migrate,
    postgres_binaries,
    start_fakes,
    start_stack,
    stop_process,
    write_results_section,
)

SECTION = "## Fault suite (`make faults`, issue 12)"
DATABASE = "whatsbot_faults"

# The app's own recovery settings, turned from minutes to seconds so that a scenario recovers
# within its 30 s budget (README, Settings, has the production defaults and what each does);
# everything else is the production default.
RECOVERY_SETTINGS = {
    "SWEEP_INTERVAL_SECONDS": "2",
    "SWEEP_REQUEUE_AFTER_SECONDS": "5",
    "WORKER_HEARTBEAT_SECONDS": "1",
    "WORKER_HEARTBEAT_STALE_SECONDS": "5",
    # A claim a live worker lost (its task died on a database error) is taken back this long
    # after it was made. With the production 120 s, messages whose reply was under way when
    # PostgreSQL went down wait two minutes (bench/RESULTS.md).
    "SWEEP_STALE_AFTER_SECONDS": "20",
    # An unknown send is looked up (Twilio) once its call is surely over, or re-sent (Meta) when
    # no status came: the lookup must stay above the provider timeout + 5 s (whatsbot.W003).
    "PROVIDER_TIMEOUT_SECONDS": "5",
    "UNKNOWN_LOOKUP_AFTER_SECONDS": "10",
    "UNKNOWN_RESEND_AFTER_SECONDS": "20",
    "BURST_WINDOW_SECONDS": "2.0",  # the production default (the bench's shared environment says 0)
}


@dataclass
class Row:
    """One line of the table: a scenario and what it counted."""

    scenario: str
    messages: int
    lost: int | None = None  # None: not counted (the scenario broke down, or has no replies)
    duplicated: int | None = None
    server_errors: int | None = None
    recovery_s: float | None = None
    details: str = ""
    passed: bool = False
    unacknowledged: int = 0  # messages never answered 2xx, however often delivered


class Supervisor(threading.Thread):
    """Starts again an app process that exited, as docker's `restart: unless-stopped` does in
    production (docker-compose.yml); every restart is recorded for the scenario's notes."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(name="supervisor", daemon=True)
        self.stack = stack
        self.halt = threading.Event()
        self.restarts: list[tuple[float, str, int]] = []  # (time.monotonic(), role, exit code)

    def run(self) -> None:
        while not self.halt.wait(0.5):
            for role, code in self.stack.restart_exited():
                self.restarts.append((time.monotonic(), role, code))

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


@dataclass
class System:
    postgres: LocalPostgres
    redis: LocalRedis
    stack: Stack
    supervisor: Supervisor
    fake_port: int
    database_url: str
    logs: Path
    rows: list[Row] = field(default_factory=list)

    @property
    def web_port(self) -> int:
        return self.stack.port


ROWS = pytest.StashKey[list[Row]]()
STARTED = pytest.StashKey[tuple[float, float, datetime]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[ROWS] = []
    config.stash[STARTED] = (time.monotonic(), load_average(), datetime.now(UTC))


def own_postgres(cleanup: contextlib.ExitStack, logs: Path, name: str) -> LocalPostgres:
    """A cluster of our own, stopped and deleted by `cleanup` (its log kept in `logs`). Not under
    pytest's temporary directory: as root the cluster belongs to `postgres`, who cannot enter
    root's private /tmp/pytest-of-root."""
    directory = Path(tempfile.mkdtemp(prefix=f"whatsbot-{name}-"))
    cleanup.callback(shutil.rmtree, directory, ignore_errors=True)
    log = directory / "postgres.log"
    cleanup.callback(lambda: log.exists() and shutil.copy(log, logs / f"{name}-postgres.log"))
    postgres = LocalPostgres(directory)
    postgres.start()
    cleanup.callback(lambda: postgres.stop("immediate") if postgres.is_running() else None)
    return postgres


@pytest.fixture(scope="session")
def system(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    if postgres_binaries() is None or not shutil.which("redis-server"):
        pytest.skip("the fault suite needs PostgreSQL's initdb/pg_ctl and redis-server (apt-get install them)")
    logs = tmp_path_factory.mktemp("faults")
    print(f"\nfault suite: logs in {logs}; load average {load_average():.1f}", flush=True)
    with contextlib.ExitStack() as cleanup:
        postgres = own_postgres(cleanup, logs, "faults")
        redis = LocalRedis(logs)
        redis.start()
        cleanup.callback(redis.stop)
        fakes, fake_port = start_fakes(logs, seed=12)
        cleanup.callback(stop_process, fakes)
        database_url = postgres.create_database(DATABASE)
        port = free_port()
        env = app_environment(
            database_url=database_url, redis_url=redis.url, web_port=port, fake_port=fake_port, scratch=logs,
            extra=RECOVERY_SETTINGS,
        )  # fmt: skip
        migrate(ROOT, sys.executable, env, logs / "migrate.log")
        stack = Stack(ROOT, sys.executable, "faults", port, env, logs)
        start_stack(stack)
        cleanup.callback(stack.stop)
        supervisor = Supervisor(stack)
        supervisor.start()
        cleanup.callback(supervisor.stop)
        print(f"fault suite: system up (gunicorn on {port}, PostgreSQL {postgres.port}, Redis {redis.port})")
        yield System(postgres, redis, stack, supervisor, fake_port, database_url, logs, request.config.stash[ROWS])


FUZZ_TEST = ROOT / "conversations" / "tests" / "test_webhook_fuzz.py"
FUZZ_EXAMPLES = 5000  # per test of that file (Meta bodies, Twilio forms): 10 000 bodies


@dataclass
class Fuzzing:
    process: subprocess.Popen
    log: Path
    started: float


@pytest.fixture(scope="session", autouse=True)
def fuzzing(request: pytest.FixtureRequest, system: System) -> Iterator[Fuzzing | None]:
    """The parsing fuzz test (hypothesis) scaled to 10 000 bodies, through Django's test client
    (through gunicorn the budget would go on HTTP, not on the webhook's code) on a PostgreSQL
    cluster of its own (the scenarios stop theirs). Minutes of CPU but no process of the stack:
    it starts with the session, niced, and runs while the scenarios wait on their faults."""
    if not FUZZ_TEST.exists() or not any("fuzz" in item.name for item in request.session.items):
        yield None
        return
    with contextlib.ExitStack() as cleanup:
        postgres = own_postgres(cleanup, system.logs, "fuzz")
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url("whatsbot_fuzz"),
            "WEBHOOK_FUZZ_EXAMPLES": str(FUZZ_EXAMPLES),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        log = system.logs / "fuzz.log"
        with open(log, "w") as output:
            process = subprocess.Popen(
                ["nice", "-n", "10", sys.executable, "-m", "pytest", str(FUZZ_TEST), "-q", "-p", "no:cacheprovider"],
                cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        cleanup.callback(stop_process, process)
        yield Fuzzing(process, log, time.monotonic())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash.get(ROWS, [])
    if not rows:
        return
    began, load_before, started = config.stash[STARTED]
    block = results_block(rows, seconds=time.monotonic() - began, load=(load_before, load_average()), started=started)
    terminalreporter.write_sep("=", "fault suite")
    terminalreporter.write_line(block)
    if os.environ.get("FAULTS_WRITE_RESULTS") == "1":
        write_results_section(block, section=SECTION, marker="faults")
        terminalreporter.write_line(f"written to {ROOT / 'bench' / 'RESULTS.md'}")


def results_block(rows: list[Row], *, seconds: float, load: tuple[float, float], started: datetime) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    lines = [
        f"Run {started:%Y-%m-%d %H:%M} UTC on {commit or '?'}, {os.cpu_count()} cores, load average "
        f"{load[0]:.1f} → {load[1]:.1f}; the whole suite took {seconds:.0f} s.",
        "",
        "| scenario | messages | lost | duplicated | 5xx | recovery | result |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        counts = " | ".join(
            "—" if value is None else str(value) for value in (row.lost, row.duplicated, row.server_errors)
        )
        recovery = "—" if row.recovery_s is None else f"{row.recovery_s:.1f} s".replace("inf s", "never")
        lines.append(
            f"| {row.scenario} | {row.messages} | {counts} | {recovery} | {'pass' if row.passed else '**fail**'} |"
        )
    lines += ["", *(f"- {row.scenario}: {row.details}" for row in rows if row.details)]
    return "\n".join(lines)
