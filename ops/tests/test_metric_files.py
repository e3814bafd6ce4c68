"""Prometheus multiprocess files (PROMETHEUS_MULTIPROC_DIR) across restarts: a start removes the
files of processes that have ended, never those of a process still running (another container's
included), every entry point starts so, and gunicorn marks a worker that ended dead."""

from __future__ import annotations

import fcntl
import os
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from telemetry.multiprocess import HOST, remove_stale_files

ROOT = Path(__file__).resolve().parents[2]
# A process that counts 5 takeovers, says so, and runs until its stdin closes.
COUNTING = """
import sys
from telemetry import metrics
metrics.count_takeover(action="taken_over")
metrics.count_takeover(action="taken_over")
metrics.TAKEOVERS.labels(action="taken_over").inc(3)
print("counted", flush=True)
sys.stdin.readline()
"""


def counting_process(directory: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", COUNTING], cwd=ROOT, env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout.readline().strip() == "counted"
    return process


def end(process: subprocess.Popen) -> None:
    process.stdin.close()
    process.wait(timeout=30)


def takeovers(directory: Path) -> float:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(directory))
    return registry.get_sample_value("whatsbot_takeovers_total", {"action": "taken_over"}) or 0.0


def counter_file(directory: Path, owner: str, value: float) -> Path:
    """A counter file as prometheus-client writes it, of a process named `owner`."""
    path = directory / f"counter_{owner}.db"
    values = MmapedDict(str(path))
    key = mmap_key("whatsbot_takeovers", "whatsbot_takeovers_total", ["action"], ["taken_over"], "Staff takeovers.")
    values.write_value(key, value, 0.0)
    values.close()
    return path


@pytest.fixture
def running_elsewhere(tmp_path: Path) -> Iterator[None]:
    """A process of another host (container) that is alive: its lock is held."""
    fd = os.open(tmp_path / "web-container-7.lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
    os.close(fd)


def test_a_start_removes_the_files_of_ended_processes_only(tmp_path: Path, running_elsewhere) -> None:
    ended = counting_process(tmp_path)
    end(ended)
    running = counting_process(tmp_path)
    try:
        counter_file(tmp_path, "web-container-7", 100)  # another container's process, alive
        counter_file(tmp_path, "web-container-8", 1000)  # ended, but its container still runs
        counter_file(tmp_path, "old-container-1", 10_000)  # a container long gone
        assert takeovers(tmp_path) == 5 + 5 + 100 + 1000 + 10_000

        removed = remove_stale_files(tmp_path)

        assert removed == sorted([f"{HOST}-{ended.pid}", "old-container-1"])
        assert takeovers(tmp_path) == 5 + 100 + 1000
        assert not list(tmp_path.glob(f"*{HOST}-{ended.pid}*"))
        assert remove_stale_files(tmp_path) == []
    finally:
        end(running)
    assert remove_stale_files(tmp_path) == [f"{HOST}-{running.pid}"]


def test_gunicorn_marks_an_ended_worker_dead(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    worker = SimpleNamespace(pid=4242)
    live_gauge = tmp_path / f"gauge_livesum_{HOST}-4242.db"
    live_gauge.write_bytes(b"")
    counters = counter_file(tmp_path, f"{HOST}-4242", 7)
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    config["child_exit"](None, worker)

    assert not live_gauge.exists()
    assert counters.exists()  # a counter of the run stays in the sums until the next start


# How each entry point starts, up to the moment its workers would: gunicorn's master, daphne's
# application, a Celery worker and beat.
CELERY = "from celery import signals; import whatsbot_project.celery; signals.{}.send(sender=None)"
STARTS = {
    "gunicorn": "import runpy; runpy.run_path('gunicorn.conf.py')['on_starting'](None)",
    "daphne": "import whatsbot_project.asgi",
    "celery worker": CELERY.format("worker_init"),
    "celery beat": CELERY.format("beat_init"),
}


@pytest.mark.slow
@pytest.mark.parametrize("entry_point", STARTS)
def test_every_entry_point_removes_what_an_earlier_run_left(tmp_path: Path, entry_point: str) -> None:
    earlier = counter_file(tmp_path, f"{HOST}-1", 5)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    env.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")

    subprocess.run([sys.executable, "-c", STARTS[entry_point]], cwd=ROOT, env=env, check=True, timeout=60)

    assert not earlier.exists()
