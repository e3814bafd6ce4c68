"""Webhook ingest benchmark: signed Meta webhooks against a running server, every one unique.

Measures what Meta measures: the time until our 200. Two phases per server setup:
  1. a fixed rate (default 200 requests/s, open loop: latency is taken from the *scheduled*
     send time, so a stalled server cannot hide its queue), reporting p50/p99;
  2. saturation: N keep-alive connections sending back to back, reporting acknowledged/s.

By default it starts each server setup itself on a free port with the environment it was given
(DATABASE_URL, REDIS_URL), migrates first, and compares them in one run:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/whatsbot_bench REDIS_URL=redis://127.0.0.1:6379/3 \
        .venv/bin/python bench/ingest.py

`--url URL --secret S` measures an already running server instead. No Celery worker runs
during the bench (the broker just queues), so the numbers are the webhook's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the port helpers are the system tests'
from systemtests.harness import free_port, wait_for_port  # noqa: E402

FIXTURE = ROOT / "conversations" / "tests" / "fixtures" / "meta" / "text.json"
SECRET = "bench-app-secret"

SERVERS = {
    # The production HTTP setup (docker-compose.yml): gunicorn sync workers, two per core. A
    # webhook is one INSERT and one broker publish, so a worker spends part of each request
    # waiting on a round trip; a second worker per core fills that time.
    "gunicorn": lambda port, workers: [
        sys.executable, "-m", "gunicorn", "whatsbot_project.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class", "sync",
        "--log-level", "warning",
    ],
    # For comparison: threaded workers, one process per core, keep-alive.
    "gunicorn-gthread": lambda port, workers: [
        sys.executable, "-m", "gunicorn", "whatsbot_project.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(max(1, workers // 2)), "--worker-class", "gthread",
        "--threads", "4", "--keep-alive", "5", "--log-level", "warning",
    ],
    # daphne alone (it also serves the websockets): one process.
    "daphne": lambda port, workers: [
        sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0",
        "whatsbot_project.asgi:application",
    ],
    # For comparison only, not a dependency: `pip install granian` first.
    "granian": lambda port, workers: [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(max(1, workers // 2)), "--blocking-threads", "4", "--log-level", "warning",
        "whatsbot_project.wsgi:application",
    ],
}  # fmt: skip


def signed_bodies(count: int, run_id: str, secret: str) -> list[tuple[bytes, str]]:
    template = json.loads(FIXTURE.read_bytes())
    value = template["entry"][0]["changes"][0]["value"]
    message, contact = value["messages"][0], value["contacts"][0]
    bodies = []
    for i in range(count):
        # A new message each time, from one of 5,000 customers (each its own BSUID and number;
        # 1556…, never the fixture's own display number 15550001234, whose messages are ignored).
        customer = i % 5000
        message["id"] = f"wamid.BENCH.{run_id}.{i}"
        message["from"] = contact["wa_id"] = f"1556{customer:07d}"
        message["from_user_id"] = contact["user_id"] = f"US.BENCH{customer:07d}"
        body = json.dumps(template).encode()
        bodies.append((body, "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()))
    return bodies


class Connection:
    """One HTTP/1.1 keep-alive connection; enough protocol for a 200 and a short body."""

    def __init__(self, host: str, port: int, path: str):
        self.host, self.port, self.path = host, port, path
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, body: bytes, signature: str) -> int:
        if self.writer is None:
            await self.open()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            if name.lower() == "connection" and "close" in value.lower():
                close = True
        await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status


async def fixed_rate(url: str, bodies: list, rate: float, seconds: float) -> list[float]:
    parts = urlsplit(url)
    total = int(rate * seconds)
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(Connection(parts.hostname, parts.port, parts.path))
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.2

    async def one(i: int) -> None:
        nonlocal errors
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        connection = await pool.get()
        try:
            status = await connection.post(*bodies[i])
            if status != 200:
                errors += 1
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            connection.writer = None
        finally:
            pool.put_nowait(connection)
        latencies.append((time.perf_counter() - scheduled) * 1000)

    await asyncio.gather(*(one(i) for i in range(total)))
    if errors:
        print(f"  fixed rate: {errors} errors")
    return latencies


async def saturate(url: str, bodies: list, connections: int, seconds: float) -> tuple[int, float, int]:
    parts = urlsplit(url)
    done = errors = 0
    cursor = iter(range(len(bodies)))
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done, errors
        connection = Connection(parts.hostname, parts.port, parts.path)
        while time.perf_counter() < deadline:
            try:
                status = await connection.post(*bodies[next(cursor)])
            except StopIteration:
                return
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                connection.writer = None
                continue
            if status == 200:
                done += 1
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return done, time.perf_counter() - started, errors


def start_server(name: str, workers: int) -> tuple[subprocess.Popen, str]:
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-bench-secret-key-bench-secret-key",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "WHATSAPP_APP_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    process = subprocess.Popen(SERVERS[name](port, workers), cwd=ROOT, env=env)
    try:
        wait_for_port(port, process, 30, name)
    except RuntimeError as exc:
        process.kill()
        raise SystemExit(str(exc)) from None
    return process, f"http://127.0.0.1:{port}/webhooks/meta/"


def run(url: str, args: argparse.Namespace, label: str) -> dict:
    run_id = f"{label}{int(time.time())}"
    warm = signed_bodies(200, run_id + "w", args.secret)
    asyncio.run(saturate(url, warm, 8, 2))
    bodies = signed_bodies(int(args.rate * args.seconds), run_id + "r", args.secret)
    latencies = asyncio.run(fixed_rate(url, bodies, args.rate, args.seconds))
    bodies = signed_bodies(int(4000 * args.seconds), run_id + "s", args.secret)
    done, elapsed, errors = asyncio.run(saturate(url, bodies, args.connections, args.seconds))
    result = {
        "setup": label,
        "p50_ms": statistics.median(latencies),
        "p99_ms": statistics.quantiles(latencies, n=100)[98],
        "rate": args.rate,
        "saturation_per_s": done / elapsed,
        "errors": errors,
    }
    print(
        f"{label:>10}: at {args.rate:.0f}/s p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms; "
        f"saturation {result['saturation_per_s']:.0f} acknowledged/s "
        f"({args.connections} connections, {errors} errors)"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="measure this running server (…/webhooks/meta/) instead of starting one")
    parser.add_argument("--secret", default=SECRET, help="its WHATSAPP_APP_SECRET (with --url)")
    parser.add_argument("--servers", default="gunicorn,gunicorn-gthread,daphne", help="setups to start and compare")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (default 4: two per core)")
    parser.add_argument("--rate", type=float, default=200, help="fixed-rate phase, requests/s (default 200)")
    parser.add_argument("--seconds", type=float, default=10, help="length of each phase (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="saturation connections (default 16)")
    parser.add_argument("--rounds", type=int, default=1, help="measure every setup this many times, interleaved")
    args = parser.parse_args()
    database = os.environ.get("DATABASE_URL", "sqlite (default)").split("@")[-1]
    print(f"database: {database}; broker: {os.environ.get('REDIS_URL', 'in-memory')}")
    if args.url:
        run(args.url, args, "server")
        return
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        from purge import ensure_database  # bench/purge.py, beside this file (its import sets nothing then)

        ensure_database(os.environ["DATABASE_URL"])  # a fresh machine has no whatsbot_bench yet
    results: dict[str, list[dict]] = {}
    # Rounds interleave the setups (A, B, A, B…) so the machine's noise falls on all of them.
    for _ in range(args.rounds):
        for name in args.servers.split(","):
            process, url = start_server(name, args.workers)
            try:
                results.setdefault(name, []).append(run(url, args, name))
            finally:
                process.terminate()
                process.wait(timeout=20)
    if args.rounds > 1:
        print(f"medians of {args.rounds} rounds:")
        for name, runs in results.items():
            p99 = statistics.median(r["p99_ms"] for r in runs)
            saturation = statistics.median(r["saturation_per_s"] for r in runs)
            print(f"{name:>10}: at {args.rate:.0f}/s p99 {p99:.1f} ms; saturation {saturation:.0f} acknowledged/s")


if __name__ == "__main__":
    main()
