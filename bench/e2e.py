"""End-to-end benchmark (issue 12): the whole system as production runs it, on this machine.

For each load it starts, from a checkout (`--checkout`, default this tree) and configured only
through the environment: `manage.py migrate` (once per checkout, into a template database),
gunicorn with 4 sync workers, one Celery worker (`--pool gevent --concurrency 200` with
DATABASE_POOL_SIZE=20, as docker-compose.yml; `--pool threads --concurrency 32` for trees before
that design) and Celery beat, on a fresh PostgreSQL database (`whatsbot_e2e_*`, created from the
template, dropped after) and a flushed Redis database (`redis://127.0.0.1:6379/11`). A separate process plays OpenAI
(`POST /v1/responses`, answering after `--model-latency`), the Graph API and Twilio's REST API
(answering after `--provider-latency`, then posting the signed `sent` and `delivered` status
webhooks a real provider would send). Customers post signed Meta webhooks (a share of Twilio
ones with `--twilio-share`), each message carrying a unique token; the fake model echoes the
token of the newest customer turn, so each send that reaches the fake provider is matched to
the customer message it answers. The fakes, the customers and the process launchers are
systemtests/harness.py's, shared with the fault suite (`make faults`).

Loads (`--loads`, default all three):
  burst    200 messages from 50 customers, 20 requests in flight, each delivered 3 times;
  rate25   25 new customers' messages per second for 60 s (open loop);
  rate200  200 webhooks per second for 30 s (open loop); answered within 60 s of the last one due?

Reported per load: webhook ack p50/p99 (open loop: from the scheduled send time), e2e p50/p99
(customer message sent -> reply accepted by the fake provider; a customer message counts as
answered by the first reply to that customer carrying its token or a later one of theirs, as a
burst gets one reply), replies/s, answered/expected, duplicate replies, model calls per customer
message by purpose, and CPU ms per customer message of the web (gunicorn master + workers) and
worker (celery) processes, from /proc/<pid>/stat before and after the load. Targets from the
issue are checked. Unanswered messages count as infinitely late in the percentiles.

    .venv/bin/python bench/e2e.py --quick                      # smoke run: seconds of each load
    .venv/bin/python bench/e2e.py --checkout /work/wt/baseline --checkout . --write-results --profile
    .venv/bin/python bench/e2e.py --from-json a.json --from-json b.json --write-results  # saved runs

Only 127.0.0.1 is contacted; every load stops by itself; processes run in their own sessions and
are always stopped; only `whatsbot_e2e_*` databases and the one Redis database are touched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the fakes, customers and processes are shared

from systemtests.harness import (  # noqa: E402
    RESULTS_FILE,
    Customers,
    Events,
    Message,
    Stack,
    app_environment,
    deliver,
    free_port,
    load_average,
    migrate,
    start_fakes,
    start_stack,
    stop_process,
    write_results_section,
)

SECTION = "## End to end (`bench/e2e.py`, issue 12)"
DB_PREFIX = "whatsbot_e2e_"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Targets of issue 12; "all" applies to every load.
TARGETS = {
    "burst": {"e2e_p99_s": 4.0, "dup_replies": 0},
    "rate25": {"e2e_p99_s": 1.5},
    "rate200": {"ack_p99_ms": 50.0, "all_answered_60s": True},
    "all": {"calls_per_msg": 1.2, "worker_cpu_ms": 15.0},
}


# --------------------------------------------------------------------------------------------
# Loads.


async def run_burst(port: int, messages: list[Message], copies: int, in_flight: int, seed: int) -> None:
    """Every message `copies` times, at most `in_flight` requests at once. Copies are spread:
    some overlap the first delivery (concurrent retries), some come a few dozen requests later."""
    chance = random.Random(seed)
    order = sorted(
        (index + (copy and chance.uniform(0, 3 * in_flight)), index)
        for index in range(len(messages))
        for copy in range(copies)
    )
    gate = asyncio.Semaphore(in_flight)

    async def one(message: Message) -> None:
        async with gate:
            started = time.monotonic()
            if message.sent is None:
                message.sent = started
            await deliver(port, message, started)

    await asyncio.gather(*(one(messages[index]) for _, index in order))


async def run_fixed_rate(port: int, messages: list[Message], rate: float) -> None:
    """Open loop: message i is due at start + i/rate; latency counts from then (a stalled server
    cannot hide its queue). At most 256 requests in flight, so a dead server cannot exhaust sockets."""
    gate = asyncio.Semaphore(256)
    start = time.monotonic() + 0.1

    async def one(index: int, message: Message) -> None:
        due = start + index / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        message.sent = due
        async with gate:
            await deliver(port, message, due)

    await asyncio.gather(*(one(index, message) for index, message in enumerate(messages)))


# --------------------------------------------------------------------------------------------
# Processes, databases, CPU.


def processes() -> Iterator[tuple[bytes, list[bytes]]]:
    """(command name, the fields after it in /proc/PID/stat) of every process now."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                head, tail = stat.read().rsplit(b")", 1)
        except OSError:
            continue
        yield head.split(b"(", 1)[1], tail.split()


def cpu_seconds(fields: list[bytes]) -> float:
    """utime+stime, plus what its exited children left in cutime/cstime: each CPU second counted once."""
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def session_cpu_seconds(session_id: int) -> float:
    """CPU of every live process in a session (fields[0] is the state, field 3 of stat(5))."""
    return sum(cpu_seconds(fields) for _, fields in processes() if int(fields[3]) == session_id)


def named_cpu_seconds(names: set[bytes]) -> float:
    """CPU of every process whose command name is one of `names` (the machine's PostgreSQL and
    Redis serve the bench alone while it runs; PostgreSQL's ended backends in the postmaster's)."""
    return sum(cpu_seconds(fields) for name, fields in processes() if name in names)


def database_transactions(database_url: str) -> int:
    """Transactions committed and rolled back in the stack's database so far (PostgreSQL's
    statistics: each backend reports within a second of going idle)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def machine_busy_seconds() -> tuple[float, float]:
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


@dataclass
class Fakes:
    """The fake providers' process (its session's CPU is counted apart) and port."""

    pid: int
    port: int


@dataclass
class Checkout:
    path: Path
    python: str
    label: str
    template: str = ""


def make_checkout(path: str) -> Checkout:
    root = Path(path).resolve()
    if not (root / "manage.py").exists():
        raise SystemExit(f"{root} has no manage.py")
    python = root / ".venv" / "bin" / "python"
    sha = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    return Checkout(root, str(python) if python.exists() else sys.executable, f"{root.name}@{sha or '?'}")


class Postgres:
    def __init__(self, admin_url: str) -> None:
        import psycopg

        self.admin_url = admin_url
        self.connection = psycopg.connect(admin_url, autocommit=True)
        self.dropped_later: list[str] = []

    def drop_leftovers(self) -> None:
        """Databases of earlier runs that were killed before their cleanup (their pid is gone)."""
        rows = self.connection.execute("SELECT datname FROM pg_database WHERE datname LIKE 'whatsbot\\_e2e\\_%'")
        for (name,) in rows.fetchall():
            pid = next((int(part) for part in name.split("_")[3:] if part.isdigit()), 0)
            if pid and not Path(f"/proc/{pid}").exists():
                self.drop(name)

    def url(self, name: str) -> str:
        parts = urlsplit(self.admin_url)
        return parts._replace(path=f"/{name}").geturl()

    def create(self, name: str, template: str = "") -> None:
        from psycopg import sql

        assert name.startswith(DB_PREFIX)
        self.drop(name)
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        self.connection.execute(statement)

    def drop(self, name: str) -> None:
        from psycopg import sql

        assert name.startswith(DB_PREFIX)  # never anything but our own
        self.connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()  # this database only
    client.close()


def bench_environment(
    args: argparse.Namespace, database_url: str, web_port: int, fake_port: int, scratch: Path
) -> dict[str, str]:
    extra = dict(assignment.partition("=")[::2] for assignment in args.env)
    return app_environment(
        database_url=database_url, redis_url=args.redis_url, web_port=web_port, fake_port=fake_port,
        scratch=scratch, extra=extra,
    )  # fmt: skip


SAMPLER = '''"""Fallback profiler when py-spy cannot attach: samples every thread's stack (collapsed
stacks, py-spy's raw format) while holding the GIL, written at exit."""
import atexit, collections, os, sys, threading, time
if os.environ.get("E2E_SAMPLER_OUT"):
    _counts = collections.Counter()
    _stop = threading.Event()
    def _name(frame):
        code = frame.f_code
        return f"{code.co_name} ({code.co_filename}:{frame.f_lineno})"
    def _sample():
        me = threading.get_ident()
        while not _stop.wait(0.01):
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack = []
                while frame is not None:
                    stack.append(_name(frame))
                    frame = frame.f_back
                leaf = stack[0]
                if any(idle in leaf for idle in ("wait (", "select (", "poll (", "_recv", "readline", "sleep")):
                    continue
                _counts[";".join(reversed(stack))] += 1
    def _write():
        _stop.set()
        with open(os.environ["E2E_SAMPLER_OUT"], "w") as out:
            for stack, count in _counts.items():
                out.write(f"{stack} {count}\\n")
    threading.Thread(target=_sample, daemon=True, name="e2e-sampler").start()
    atexit.register(_write)
'''


def stack_cpu(stack: Stack, fakes_pid: int) -> dict[str, float]:
    """CPU seconds so far of each part of the machine's work: the stack's roles, and beside
    them the fake providers (in production remote), PostgreSQL and Redis."""
    cpu = {role: session_cpu_seconds(process.pid) for role, process in stack.processes.items()}
    cpu["worker"] = sum(cpu.pop(role) for role in stack.worker_roles)  # the workers together
    cpu["fakes"] = session_cpu_seconds(fakes_pid)
    cpu["postgres"] = named_cpu_seconds({b"postgres"})
    cpu["redis"] = named_cpu_seconds({b"redis-server"})
    return cpu


def migrate_template(
    checkout: Checkout, index: int, postgres: Postgres, args: argparse.Namespace, fake_port: int, logs: Path
) -> None:
    checkout.template = f"{DB_PREFIX}template{index}_{os.getpid()}"
    postgres.create(checkout.template)
    env = bench_environment(args, postgres.url(checkout.template), 0, fake_port, logs)
    started = time.monotonic()
    migrate(checkout.path, checkout.python, env, logs / f"migrate-{checkout.label}.log")
    print(f"  migrated {checkout.label} into template {checkout.template} ({time.monotonic() - started:.0f} s)")


def start_bench_stack(
    checkout: Checkout, name: str, postgres: Postgres, args, fake_port: int, logs: Path, sampler: Path | None
) -> Stack:
    """The production processes on a fresh database (from the checkout's template) and a
    flushed Redis database."""
    database = f"{DB_PREFIX}{name.split('-', 1)[0]}_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    postgres.create(database, template=checkout.template)
    # Dropped at the end of the run: DROP DATABASE waits for a checkpoint, seconds on a busy machine.
    postgres.dropped_later.append(database)
    flush_redis(args.redis_url)
    port = free_port()
    env = bench_environment(args, postgres.url(database), port, fake_port, logs)
    stack = Stack(
        checkout.path, checkout.python, name, port, env, logs, web_workers=args.web_workers,
        concurrency=args.concurrency, pool=args.pool, worker_processes=args.worker_processes,
        worker_nice=args.worker_nice,
    )  # fmt: skip
    if sampler is None:
        return start_stack(stack)
    profiled = {"PYTHONPATH": str(sampler.parent), "E2E_SAMPLER_OUT": str(logs / f"profile-{name}.txt")}
    return start_stack(stack, {"worker": profiled})


# --------------------------------------------------------------------------------------------
# One load against one checkout.


@dataclass
class Load:
    name: str
    code: int
    messages: int
    customers: int  # customers the messages come from (round robin)
    rate: float = 0.0  # open loop messages/s; 0 = burst
    copies: int = 1
    in_flight: int = 20
    drain: float = 300.0  # seconds after the last webhook to wait for answers


def answered_at(messages: dict[str, Message], sends: list[dict]) -> dict[str, float]:
    """When each message was first answered: by a reply carrying its token or a later one of
    the same customer's (a burst is answered once, by the reply to its newest message)."""
    by_customer: dict[int, list[Message]] = defaultdict(list)
    for message in messages.values():
        by_customer[message.customer].append(message)
    answers: dict[str, float] = {}
    for send in sends:
        replied = messages.get(send["token"])
        if replied is None:
            continue
        for message in by_customer[replied.customer]:
            if message.seq <= replied.seq and (message.token not in answers or send["t"] < answers[message.token]):
                answers[message.token] = send["t"]
    return answers


def percentile(values: list[float], share: float) -> float:
    """Nearest rank; inf (unanswered) sorts last."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


async def warm_up(port: int, events: Events, session, customers: Customers) -> None:
    """A few messages answered before measuring: every gunicorn worker and the worker's
    threads have imported and connected, so the load measures steady work."""
    warm = {m.token: m for m in (customers.message(f"e2ewarm{i}", 900000 + i) for i in range(8))}
    started = time.monotonic()
    await asyncio.gather(*(deliver(port, m, started) for m in warm.values()))
    for m in warm.values():
        m.sent = started
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        await events.fetch(session)
        if len(answered_at(warm, [e for e in events.items if e["kind"] == "send"])) == len(warm):
            return
        await asyncio.sleep(0.25)
    raise RuntimeError("warm-up messages were not answered within 60 s (see the logs)")


async def settle(events: Events, session, quiet: float = 2.0, cap: float = 15.0) -> None:
    """Wait for trailing work (extraction calls, status webhooks) to stop."""
    deadline = time.monotonic() + cap
    last_change = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last_change < quiet:
        await asyncio.sleep(0.25)
        if await events.fetch(session):
            last_change = time.monotonic()


async def measure(load: Load, stack: Stack, fakes: Fakes, args: argparse.Namespace) -> dict:
    from aiohttp import ClientSession

    events = Events(fakes.port)
    customers = Customers(load.code, args.twilio_share, f"http://127.0.0.1:{stack.port}", args.seed)
    async with ClientSession() as session:
        await events.configure(
            session, reset=True, webhook_base=f"http://127.0.0.1:{stack.port}", status_share=args.status_share,
            model_latency=args.model_latency, provider_latency=args.provider_latency,
        )  # fmt: skip
        began = time.monotonic()
        await warm_up(stack.port, events, session, customers)
        await settle(events, session, quiet=1.5, cap=10)
        print(f"  warmed up in {time.monotonic() - began:.1f} s", flush=True)
        messages = {}
        for index in range(load.messages):
            message = customers.message(f"e2e{index:06d}", index % load.customers)
            messages[message.token] = message
        cursor = len(events.items)
        cpu_before, busy_before, load_before = stack_cpu(stack, fakes.pid), machine_busy_seconds(), load_average()
        transactions_before = database_transactions(stack.env["DATABASE_URL"])
        own_before = os.times()
        started = time.monotonic()
        ordered = list(messages.values())
        if load.rate:
            await run_fixed_rate(stack.port, ordered, load.rate)
        else:
            await run_burst(stack.port, ordered, load.copies, load.in_flight, args.seed)
        load_end = time.monotonic()
        deadline = load_end + load.drain
        while time.monotonic() < deadline:
            await events.fetch(session)
            sends = [e for e in events.items[cursor:] if e["kind"] == "send"]
            if len(answered_at(messages, sends)) == len(messages) or not stack.alive():
                break
            await asyncio.sleep(0.5)
        drained = time.monotonic()
        await settle(events, session)
        cpu_after, busy_after, load_after = stack_cpu(stack, fakes.pid), machine_busy_seconds(), load_average()
        await asyncio.sleep(1.5)  # the backends' statistics reach pg_stat_database once they idle
        transactions_after = database_transactions(stack.env["DATABASE_URL"])
        own_after = os.times()
    if not stack.alive():
        print(f"  WARNING: a process of the stack died during {load.name}; see {stack.logs}")
    recorded = events.items[cursor:]
    sends = [e for e in recorded if e["kind"] == "send" and e["token"] in messages]
    answers = answered_at(messages, sends)
    e2e = [answers.get(m.token, math.inf) - m.sent for m in ordered]
    first_acks = [m.acks[0] for m in ordered if m.acks]
    all_acks = [ack for m in ordered for ack in m.acks]
    codes = Counter(code for m in ordered for code in m.codes)
    per_token = Counter(send["token"] for send in sends)
    calls = Counter(e["purpose"] for e in recorded if e["kind"] == "model")
    statuses = [e for e in recorded if e["kind"] == "status"]
    n = len(ordered)
    cpu_ms = {role: (cpu_after[role] - cpu_before[role]) * 1000 / n for role in cpu_after}
    last_send = max((send["t"] for send in sends), default=started)
    # "After the load stops": when the customers stopped sending (the schedule), however late
    # the server acknowledged the last webhooks.
    stopped = max(m.sent for m in ordered)
    answered_60 = sum(1 for m in ordered if answers.get(m.token, math.inf) <= stopped + 60)
    busy = (busy_after[0] - busy_before[0]) / max(1e-9, busy_after[1] - busy_before[1])
    return {
        "load": load.name,
        "messages": n,
        "deliveries": sum(len(m.acks) for m in ordered),
        "http_errors": sum(count for code, count in codes.items() if not 200 <= code < 300),
        "ack_p50_ms": percentile(all_acks, 0.50),
        "ack_p99_ms": percentile(all_acks, 0.99),
        "first_ack_p99_ms": percentile(first_acks, 0.99),
        "e2e_p50_s": percentile(e2e, 0.50),
        "e2e_p99_s": percentile(e2e, 0.99),
        "answered": len(answers),
        "answered_60s": answered_60,
        "replies": len(sends),
        "replies_per_s": len(sends) / max(1e-9, last_send - started),
        "dup_replies": sum(count - 1 for count in per_token.values() if count > 1),
        "other_sends": sum(1 for e in recorded if e["kind"] == "send" and e["token"] not in messages),
        "reads": sum(1 for e in recorded if e["kind"] == "read"),
        "model_calls": dict(calls),
        "calls_per_msg": sum(calls.values()) / n,
        "status_webhooks": len(statuses),
        "status_errors": sum(1 for e in statuses if not 200 <= e["code"] < 300),
        "status_ack_p99_ms": percentile([e["ms"] for e in statuses], 0.99),
        "web_cpu_ms": cpu_ms["web"],
        "worker_cpu_ms": cpu_ms["worker"],
        "beat_cpu_ms": cpu_ms["beat"],
        "fakes_cpu_ms": cpu_ms["fakes"],
        "postgres_cpu_ms": cpu_ms["postgres"],
        "redis_cpu_ms": cpu_ms["redis"],
        "transactions_per_msg": (transactions_after - transactions_before) / n,
        # Everything the two cores did (the kernel's network work too), per message answered.
        "machine_cpu_ms_per_answered": (busy_after[0] - busy_before[0]) * 1000 / max(1, len(answers)),
        "bench_cpu_ms": (sum(own_after[:4]) - sum(own_before[:4])) * 1000 / n,
        "load_seconds": load_end - started,
        "drain_seconds": drained - load_end,
        "machine_busy_share": busy,
        "load_average": [load_before, load_after],
    }


def per_answered(row: dict, key: str) -> float:
    """A per-message figure spread over the messages answered: while a backlog is left
    unanswered, dividing by every message sent would flatter a system that did not keep up."""
    return row[key] * row["messages"] / max(1, row["answered"])


def check_targets(row: dict) -> list[str]:
    """The issue's targets this row misses (empty: all met)."""
    misses = []
    targets = {**TARGETS["all"], **TARGETS.get(row["load"], {})}
    if "e2e_p99_s" in targets and not row["e2e_p99_s"] <= targets["e2e_p99_s"]:
        misses.append(f"e2e p99 > {targets['e2e_p99_s']:g} s")
    if "dup_replies" in targets and row["dup_replies"] > targets["dup_replies"]:
        misses.append("duplicate replies")
    if "ack_p99_ms" in targets and not row["ack_p99_ms"] <= targets["ack_p99_ms"]:
        misses.append(f"ack p99 > {targets['ack_p99_ms']:g} ms")
    if targets.get("all_answered_60s") and row["answered_60s"] < row["messages"]:
        misses.append(f"{row['messages'] - row['answered_60s']:.0f} unanswered 60 s after")
    if not per_answered(row, "calls_per_msg") <= targets["calls_per_msg"]:
        misses.append(f"model calls > {targets['calls_per_msg']:g}")
    if not per_answered(row, "worker_cpu_ms") <= targets["worker_cpu_ms"]:
        misses.append(f"worker CPU > {targets['worker_cpu_ms']:g} ms")
    return misses


# --------------------------------------------------------------------------------------------
# Profile summary (py-spy raw output: "frame;frame;... count", root first).

LIBRARIES = [
    ("psycopg (PostgreSQL driver)", ("psycopg/", "psycopg_binary/", "psycopg_c/")),
    ("Django ORM", ("django/db/",)),
    ("kombu / redis-py (broker publish and consume)", ("kombu/", "redis/")),
    ("celery (task dispatch)", ("celery/", "billiard/", "vine/")),
    ("openai SDK / httpx2 / pydantic", ("openai/", "httpx2/", "httpx/", "httpcore", "pydantic", "anyio/", "h11/")),
    ("requests / urllib3 (Graph)", ("requests/", "urllib3/")),
    ("twilio SDK", ("twilio/", "aiohttp")),
    ("channels / channels_redis / asgiref (live events)", ("channels/", "channels_redis/", "asgiref/", "msgpack")),
    ("markdown-it (reply formatting)", ("markdown_it/",)),
    ("logging", ("logging/",)),
    ("json", ("json/",)),
    ("Django other (settings, signals, transactions)", ("django/",)),
    ("project code itself", ("conversations/", "channels_app/", "profiles/", "gdpr/", "whatsbot_project/")),
]
PROJECT = ("conversations/", "channels_app/", "profiles/", "gdpr/", "whatsbot_project/")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]+)(?::\d+)?\)$")


def _frame(text: str) -> tuple[str, str]:
    match = _FRAME.match(text.strip())
    return (match["function"], match["file"]) if match else (text.strip(), "")


def _is_project(path: str) -> bool:
    return any(part in path for part in PROJECT) and "site-packages" not in path and "/tests/" not in path


def _short(path: str) -> str:
    for part in PROJECT:
        if part in path:
            return part + path.split(part, 1)[1]
    return path


def summarize_profile(path: Path, top: int = 8) -> dict:
    libraries: Counter[str] = Counter()
    innermost: Counter[str] = Counter()
    outermost: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(text) for text in stack.split(";")]
        category = "other (stdlib, interpreter)"
        for _, file in reversed(frames):  # leaf first: the first library that owns a frame
            found = next((name for name, parts in LIBRARIES if any(part in file for part in parts)), None)
            if found:
                category = found
                break
        libraries[category] += count
        project = [f"{_short(file)}:{function}" for function, file in frames if _is_project(file)]
        innermost[project[-1] if project else "(no project frame: celery, kombu, recorder loop…)"] += count
        outermost[project[0] if project else "(no project frame)"] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, count / total) for name, count in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "libraries": shares(libraries),
        "innermost": shares(innermost),
        "outermost": shares(outermost),
    }


def py_spy_binary() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


# --------------------------------------------------------------------------------------------
# Report.


def fmt_ms(value: float) -> str:
    return "—" if math.isnan(value) else ("∞" if math.isinf(value) else f"{value:.0f}")


def fmt_s(value: float) -> str:
    return "—" if math.isnan(value) else ("unanswered" if math.isinf(value) else f"{value:.1f}")


def table(rows: list[dict]) -> str:
    lines = [
        "| load | checkout | ack p50 / p99 ms | e2e p50 / p99 s | replies/s | answered | dup. replies "
        "| model calls / msg (reply+structured+other) | web CPU ms/msg | worker CPU ms/msg | targets |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        calls = row["model_calls"]
        n = max(1, row["answered"])  # = messages when all were answered (see per_answered)
        split = "+".join(f"{calls.get(kind, 0) / n:.2f}" for kind in ("reply", "structured", "other"))
        misses = check_targets(row)
        answered = f"{row['answered']:.0f}/{row['messages']:.0f}"  # medians of counts may be x.5
        if row["load"] == "rate200":
            answered += f" ({row['answered_60s']:.0f} within 60 s)"
        star = "" if row["answered"] >= row["messages"] else " *"
        lines.append(
            f"| {row['load']} | {row['checkout']} | {fmt_ms(row['ack_p50_ms'])} / {fmt_ms(row['ack_p99_ms'])} "
            f"| {fmt_s(row['e2e_p50_s'])} / {fmt_s(row['e2e_p99_s'])} | {row['replies_per_s']:.1f} | {answered} "
            f"| {row['dup_replies']:.0f} | {per_answered(row, 'calls_per_msg'):.2f} ({split}){star} "
            f"| {row['web_cpu_ms']:.1f} | {per_answered(row, 'worker_cpu_ms'):.1f}{star} "
            f"| {'met' if not misses else 'missed: ' + ', '.join(misses)} |"
        )
    if any(row["answered"] < row["messages"] for row in rows):
        lines.append(
            "\n\\* per message answered (the worker's CPU includes recording the unanswered ones); "
            "web CPU is per webhook sent"
        )
    return "\n".join(lines)


def details(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        lines.append(
            f"- {row['load']} / {row['checkout']}, round {row['round']}: {row['messages']} messages, "
            f"{row['deliveries']} webhooks "
            f"({row['http_errors']} not 2xx), load {row['load_seconds']:.0f} s + drain {row['drain_seconds']:.0f} s; "
            f"{row['replies']} replies, {row['other_sends']} other sends, {row['reads']} read receipts; "
            f"{row['status_webhooks']} status webhooks (p99 {fmt_ms(row['status_ack_p99_ms'])} ms, "
            f"{row['status_errors']} not 2xx); beat {row['beat_cpu_ms']:.2f} ms/msg, bench itself "
            f"{row['bench_cpu_ms']:.1f} ms/msg, fake providers {row.get('fakes_cpu_ms', math.nan):.1f}, "
            f"PostgreSQL {row.get('postgres_cpu_ms', math.nan):.1f} "
            f"({row.get('transactions_per_msg', math.nan):.1f} transactions/msg), "
            f"Redis {row.get('redis_cpu_ms', math.nan):.1f} "
            f"ms/msg; whole machine {row.get('machine_cpu_ms_per_answered', math.nan):.1f} ms per message "
            f"answered; machine busy {row['machine_busy_share'] * 100:.0f} %, "
            f"load average {row['load_average'][0]:.1f} → {row['load_average'][1]:.1f}"
        )
    return "\n".join(lines)


def medians(rows: list[dict]) -> list[dict]:
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        grouped[(row["load"], row["checkout"])].append(row)
    result = []
    for (_load, _checkout), group in grouped.items():
        merged = dict(group[0])
        for key, value in group[0].items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                merged[key] = statistics.median(row[key] for row in group)
        merged["model_calls"] = {
            kind: statistics.median(row["model_calls"].get(kind, 0) for row in group)
            for kind in {kind for row in group for kind in row["model_calls"]}
        }
        result.append(merged)
    return result


def profile_markdown(profiles: dict[str, dict]) -> str:
    lines = []
    for label, summary in profiles.items():
        lines.append(f"**{label}** — {summary['samples']} samples of the celery worker holding the GIL:\n")
        for title, key in (
            ("by library (the innermost frame that belongs to one)", "libraries"),
            ("by project function (innermost project frame, inclusive)", "innermost"),
            ("by entry point (outermost project frame)", "outermost"),
        ):
            entries = ", ".join(f"{name} {share * 100:.0f} %" for name, share in summary[key])
            lines.append(f"- {title}: {entries}")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def build_loads(args: argparse.Namespace) -> dict[str, Load]:
    if args.quick:
        return {
            "burst": Load("burst", 1, 40, 10, copies=3, in_flight=20, drain=30),
            "rate25": Load("rate25", 2, 100, 100, rate=25, drain=30),
            "rate200": Load("rate200", 3, 200, 200, rate=200, drain=30),
        }
    rate25, rate200 = int(25 * args.rate25_seconds), int(200 * args.rate200_seconds)
    return {
        "burst": Load("burst", 1, args.burst_messages, args.burst_customers, copies=3, in_flight=20, drain=args.drain),
        # New customers, one message each; rate200 is judged on answers within 60 s.
        "rate25": Load("rate25", 2, rate25, rate25, rate=25, drain=args.drain),
        "rate200": Load("rate200", 3, rate200, rate200, rate=200, drain=60),
    }


def run_one(checkout: Checkout, load: Load, postgres: Postgres, args, fakes: Fakes, logs: Path, profile: str) -> dict:
    """One load on a fresh stack; profile is "", "py-spy" or "sampler"."""
    name = f"{load.name}-{checkout.label.replace('@', '-')}" + ("-profiled" if profile else "")
    sampler = logs / "sampler" / "sitecustomize.py" if profile == "sampler" else None
    began = time.monotonic()
    stack = start_bench_stack(checkout, name, postgres, args, fakes.port, logs, sampler)
    print(f"  stack up in {time.monotonic() - began:.1f} s", flush=True)
    spy = None
    try:
        if profile == "py-spy":
            output = logs / f"profile-{name}.txt"
            spy = subprocess.Popen(
                [py_spy_binary(), "record", "--pid", str(stack.processes["worker"].pid), "--rate", "100", "--gil",
                 "--nonblocking", "--format", "raw", "--output", str(output)],
                stdout=subprocess.DEVNULL, stderr=open(logs / f"py-spy-{name}.log", "w"),
            )  # fmt: skip
        row = asyncio.run(measure(load, stack, fakes, args))
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
        began = time.monotonic()
        stack.stop()
        print(f"  stack stopped in {time.monotonic() - began:.1f} s", flush=True)
    shape = (args.worker_processes, args.pool, args.concurrency)
    worker = f" [{args.worker_processes}x {args.pool} {args.concurrency}]" if shape != (1, "gevent", 200) else ""
    worker += f" [worker nice {args.worker_nice}]" if args.worker_nice else ""
    row["checkout"] = checkout.label + worker + (" (profiled)" if profile else "")
    row["profile_file"] = str(logs / f"profile-{name}.txt") if profile else ""
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", action="append", help="a tree to measure (repeat to compare; default: this one)")
    parser.add_argument("--loads", default="burst,rate25,rate200", help="which loads, comma-separated")
    parser.add_argument("--rounds", type=int, default=1, help="measure every checkout this many times, interleaved")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short smoke run of every load (seconds of load each; ~25 s of start-up per load)",
    )
    parser.add_argument("--model-latency", type=float, default=0.8, help="fake OpenAI answer time, s (default 0.8)")
    parser.add_argument("--provider-latency", type=float, default=0.05, help="fake Graph/Twilio answer time, s")
    parser.add_argument(
        "--status-share", type=float, default=1.0, help="share of sends that get sent+delivered webhooks"
    )
    parser.add_argument("--twilio-share", type=float, default=0.0, help="share of customers writing through Twilio")
    parser.add_argument("--burst-messages", type=int, default=200)
    parser.add_argument("--burst-customers", type=int, default=50)
    parser.add_argument("--rate25-seconds", type=float, default=60)
    parser.add_argument("--rate200-seconds", type=float, default=30)
    parser.add_argument(
        "--drain", type=float, default=300, help="burst/rate25: longest wait for answers after the load (s)"
    )
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=200, help="the worker's slots (compose: 200)")
    parser.add_argument(
        "--pool", default="gevent", choices=["threads", "gevent"], help="the worker's pool (compose: gevent)"
    )
    parser.add_argument("--worker-processes", type=int, default=1, help="Celery workers, each with its pool")
    parser.add_argument(
        "--worker-nice", type=int, default=0, help="the workers' nice value (their CPU share under the web tier's)"
    )
    parser.add_argument("--env", action="append", default=[], help="extra KEY=VALUE for the app's environment")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres", help="admin URL")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11", help="flushed before each load")
    parser.add_argument("--profile", action="store_true", help="an extra rate25 run per checkout under py-spy")
    parser.add_argument("--write-results", action="store_true", help=f"write the tables into {RESULTS_FILE.name}")
    parser.add_argument("--json", help="also write every row to this file")
    parser.add_argument("--logs", help="directory for the processes' logs (default: a new temporary one)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--from-json", action="append", help="report saved runs (--json files) instead of measuring")
    args = parser.parse_args()
    if args.from_json:
        runs = [json.loads(Path(path).read_text()) for path in args.from_json]
        for run in runs:  # runs saved before the command was recorded
            run.setdefault("command", "python bench/e2e.py (see args)")
            run.setdefault("started", "")
        report(runs, write=args.write_results)
        return
    hosts = {urlsplit(url).hostname for url in (args.postgres, args.redis_url)}
    if hosts != {"127.0.0.1"}:
        raise SystemExit("only 127.0.0.1 services are used")
    checkouts = [make_checkout(path) for path in (args.checkout or [str(ROOT)])]
    loads = build_loads(args)
    selected = [loads[name] for name in args.loads.split(",")]
    logs = Path(args.logs or tempfile.mkdtemp(prefix="whatsbot-e2e-"))
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "sampler").mkdir(exist_ok=True)
    (logs / "sampler" / "sitecustomize.py").write_text(SAMPLER)
    print(f"logs: {logs}; load average {load_average():.1f}; {os.cpu_count()} cores")
    postgres = Postgres(args.postgres)
    postgres.drop_leftovers()
    process, fake_port = start_fakes(logs, args.seed)
    fakes = Fakes(process.pid, fake_port)
    rows: list[dict] = []
    profiles: dict[str, dict] = {}
    started = datetime.now(UTC)
    try:
        for index, checkout in enumerate(checkouts):
            migrate_template(checkout, index, postgres, args, fake_port, logs)
        for round_number in range(args.rounds):
            for load in selected:
                # Alternate the order each round so drift in the machine's load falls on every checkout.
                order = checkouts if round_number % 2 == 0 else list(reversed(checkouts))
                for checkout in order:
                    print(f"round {round_number + 1}: {load.name} on {checkout.label} …", flush=True)
                    row = run_one(checkout, load, postgres, args, fakes, logs, "")
                    row["round"] = round_number + 1
                    rows.append(row)
                    print(table([row]).splitlines()[2], flush=True)
        if args.profile:
            tool = "py-spy" if py_spy_binary() else "sampler"
            for checkout in checkouts:
                print(f"profiling rate25 on {checkout.label} with {tool} …", flush=True)
                row = run_one(checkout, loads["rate25"], postgres, args, fakes, logs, tool)
                path = Path(row["profile_file"])
                if tool == "py-spy" and (not path.exists() or not path.stat().st_size):
                    print("  py-spy could not attach; again with the in-process sampler")
                    row = run_one(checkout, loads["rate25"], postgres, args, fakes, logs, "sampler")
                    path, tool = Path(row["profile_file"]), "sampler"
                row["round"] = 0
                rows.append(row)
                profiles[f"{checkout.label}, rate25, {tool}"] = summarize_profile(path)
    finally:
        stop_process(process)
        for name in postgres.dropped_later + [checkout.template for checkout in checkouts if checkout.template]:
            postgres.drop(name)
    data = {
        "command": "python bench/e2e.py " + " ".join(sys.argv[1:]),
        "started": f"{started:%Y-%m-%d %H:%M} UTC",
        "args": vars(args),
        "rows": rows,
        "profiles": profiles,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1, default=str))
    report([data], write=args.write_results)


def report(runs: list[dict], *, write: bool) -> None:
    """Print (and write to RESULTS.md) the rows of one or more runs; a later run's rows of a
    load replace an earlier run's rows of that load (a load measured again)."""
    by_load: dict[tuple[str, bool], list[dict]] = {}
    profiles: dict[str, dict] = {}
    for run in runs:
        keys = {(row["load"], bool(row["round"])) for row in run["rows"]}
        for key in keys:
            by_load[key] = [row for row in run["rows"] if (row["load"], bool(row["round"])) == key]
        profiles.update(run["profiles"])
    order = ["burst", "rate25", "rate200"]
    measured = [row for (_, is_measured), rows in by_load.items() if is_measured for row in rows]
    measured.sort(key=lambda row: (order.index(row["load"]), row["round"], row["checkout"]))
    extra = [row for (_, is_measured), rows in by_load.items() if not is_measured for row in rows]
    rounds = max((row["round"] for row in measured), default=1)
    summary = medians(measured) if rounds > 1 else list(measured)
    summary.sort(key=lambda row: (order.index(row["load"]), row["checkout"]))
    heading = f"medians of {rounds} interleaved rounds" if rounds > 1 else "one round"
    print(f"\n{heading}:\n{table(summary)}\n\n{details(measured)}")
    if extra:
        print(f"\nprofiled runs (not in the table above):\n{table(extra)}\n\n{profile_markdown(profiles)}")
    if not write:
        return
    settings = runs[0]["args"]
    commands = "; ".join(f"`{run['command']}` ({run['started']})" for run in runs)
    block = (
        f"{heading.capitalize()}: {commands}. Model {settings['model_latency']} s, provider "
        f"{settings['provider_latency']} s, status webhooks for {settings['status_share']:.0%} of replies, "
        f"{settings['twilio_share']:.0%} Twilio customers, BURST_WINDOW_SECONDS=0.\n\n{table(summary)}\n\n"
        f"Per run:\n\n{details(measured)}\n"
    )
    if extra:
        block += "\nProfiled runs (profiler attached; not in the table above):\n\n"
        block += f"{table(extra)}\n\n{profile_markdown(profiles)}"
    write_results_section(block, section=SECTION, marker="e2e.py")
    print(f"\nwritten to {RESULTS_FILE}")


if __name__ == "__main__":
    main()
