"""The files of Prometheus multiprocess mode (PROMETHEUS_MULTIPROC_DIR): whose they are, and
which can go.

Every process writes its metrics to files named after it, `<type>_<host>-<pid>.db`, and `/metrics`
sums every file in the directory. prometheus-client leaves the files of processes that have ended
(a gunicorn worker's counters must not vanish from the sum while gunicorn runs) and asks for the
directory to be wiped at start. The directory is shared by containers that start on their own
(docker-compose.yml: web, worker, beat), so a start may not simply wipe it: each process holds
an exclusive lock on `<host>-<pid>.lock` for its life, and at start a group of processes (gunicorn's
master, a Celery worker or beat: `remove_stale_files`) removes the files of every process of its
own host that is gone, and of any host none of whose processes is alive (an old container).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
from pathlib import Path

HOST = socket.gethostname()
# `counter_…`, `histogram_…`, `summary_…`, `gauge_<mode>_…` (prometheus_client's file prefixes).
_FILE = re.compile(r"^(?:counter|histogram|summary|gauge_[a-z]+)_(?P<owner>.+)\.db$")
_claims: dict[int, str] = {}  # pid -> its name, once it holds its lock (a forked child claims anew)
_lock_files: list[int] = []  # kept open: closing one would release its lock


def process_name(pid: int) -> str:
    """A process's name in the file names: unique across the containers sharing the directory."""
    return f"{HOST}-{pid}"


def claim_process_name(directory: str) -> str:
    """This process's name, its lock taken the first time (prometheus-client calls this on every
    update, so it must stay a dictionary lookup afterwards)."""
    pid = os.getpid()
    name = _claims.get(pid)
    if name is None:
        name = process_name(pid)
        _hold_lock(Path(directory) / f"{name}.lock")
        _claims[pid] = name
    return name


def _hold_lock(path: Path) -> None:
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A cleaner may have removed the file between our open and our lock: lock the new one.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                _lock_files.append(fd)
                return
        os.close(fd)


def remove_stale_files(directory: str | Path) -> list[str]:
    """Remove the files of this host's ended processes and of hosts with no process left; the
    names of the processes whose files went."""
    directory = Path(directory)
    files: dict[str, list[Path]] = {}
    for path in directory.glob("*.db"):
        if match := _FILE.match(path.name):
            files.setdefault(match["owner"], []).append(path)
    for claim in directory.glob("*.lock"):
        files.setdefault(claim.stem, [])
    locks: dict[str, int] = {}  # the ended processes: their locks, held while their files go
    try:
        for owner in files:
            if (fd := _lock_if_ended(directory / f"{owner}.lock")) is not None:
                locks[owner] = fd
        live_hosts = {_host_of(owner) for owner in files if owner not in locks}
        removed = []
        for owner in locks:
            if _host_of(owner) == HOST or _host_of(owner) not in live_hosts:
                for path in [*files[owner], directory / f"{owner}.lock"]:
                    path.unlink(missing_ok=True)
                removed.append(owner)
        return sorted(removed)
    finally:
        for fd in locks.values():
            os.close(fd)


def _lock_if_ended(path: Path) -> int | None:
    """The lock of a process that has ended (nobody holds it), held; None while its process lives."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _host_of(owner: str) -> str:
    return owner.rpartition("-")[0]
