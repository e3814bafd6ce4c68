"""The body-size limit with lying or absent Content-Length: through the ASGI stack daphne runs
(in process), then through real gunicorn and daphne servers (`slow`: each starts a server)."""

from __future__ import annotations

import http.client
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.db import connection

from conversations.models import Message, ProcessedMessage
from systemtests.harness import free_port

from .helpers import APP_SECRET, meta_body, meta_signature, meta_text

pytestmark = pytest.mark.django_db

LIMIT = 4096


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.WEBHOOK_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT


def post_through_asgi(chunks: list[bytes], content_length: int | None) -> tuple[int, bytes]:
    from whatsbot_project.asgi import application

    body = b"".join(chunks)
    headers = [
        (b"host", b"testserver"),
        (b"content-type", b"application/json"),
        (b"x-hub-signature-256", meta_signature(body).encode()),
    ]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/meta/",
        "raw_path": b"/webhooks/meta/",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }

    async def run():
        communicator = ApplicationCommunicator(application, scope)
        for index, chunk in enumerate(chunks):
            await communicator.send_input({"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1})
        start = await communicator.receive_output(timeout=10)
        response_body = await communicator.receive_output(timeout=10)
        return start["status"], response_body.get("body", b"")

    return async_to_sync(run)()


def oversized() -> list[bytes]:
    body = meta_body("text").replace(b"opening hours", b"y" * (LIMIT * 2))
    return [body[i : i + 1000] for i in range(0, len(body), 1000)]


def test_an_oversized_body_with_honest_content_length_is_refused():
    chunks = oversized()
    status, _ = post_through_asgi(chunks, content_length=sum(map(len, chunks)))

    assert status == 413
    assert not ProcessedMessage.objects.exists()


def test_an_oversized_chunked_body_without_content_length_is_refused():
    status, _ = post_through_asgi(oversized(), content_length=None)

    assert status == 413
    assert not Message.objects.exists()


def test_an_oversized_body_with_understated_content_length_is_refused():
    status, _ = post_through_asgi(oversized(), content_length=100)

    assert status == 413
    assert not Message.objects.exists()


# Real commits: Django's ASGI handler closes old connections at request start and end.
@pytest.mark.django_db(transaction=True)
def test_a_body_under_the_limit_is_accepted_through_asgi(graph_ok):
    body = meta_body("text")
    status, content = post_through_asgi([body[:500], body[500:]], content_length=None)

    assert (status, content) == (200, b"ok")
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1


# --- Real servers -------------------------------------------------------------------------------
# The ASGI tests above hand the app every chunk; a real server frames the body itself. Under
# gunicorn (WSGI) Django read nothing of a chunked body (no Content-Length): a genuine small
# webhook got 403 and a 10 MB one 403 instead of 413, until whatsbot_project.wsgi gave Django
# the terminated input.

ROOT = Path(__file__).resolve().parents[2]
# Real commits: the server processes write to the test database (PostgreSQL) and must find it
# emptied by the flush after each test, not left with rows a rollback cannot take back.
REAL_COMMITS = pytest.mark.django_db(transaction=True)
SERVERS = {
    "gunicorn": ["-m", "gunicorn", "--workers", "1", "--bind", "127.0.0.1:{port}", "whatsbot_project.wsgi:application"],
    "daphne": ["-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "whatsbot_project.asgi:application"],
}


@dataclass
class ServerDatabase:
    url: str
    sqlite_file: Path | None  # SQLite: the servers' own file; PostgreSQL: the test database

    def processed_count(self) -> int:
        if self.sqlite_file is None:
            return ProcessedMessage.objects.count()
        with sqlite3.connect(self.sqlite_file) as db:
            return db.execute(f"SELECT count(*) FROM {ProcessedMessage._meta.db_table}").fetchone()[0]


@dataclass
class Server:
    port: int
    database: ServerDatabase
    log: Path


def server_env(database_url: str) -> dict[str, str]:
    # Not os.environ: no REDIS_URL, so the servers' Celery publishes into memory, not a shared Redis.
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "ENV_FILE": "",  # a checkout's .env (from `make run`) is not these servers' settings
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-only-secret-key-for-child-processes",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WEBHOOK_MAX_BODY_BYTES": str(LIMIT),
        "INBOUND_NOTIFY": "false",
        "CELERY_BROKER_URL": "memory://localhost/",
    }


@pytest.fixture(scope="module")
def server_database(django_db_setup, django_db_blocker, tmp_path_factory) -> ServerDatabase:
    if connection.vendor == "postgresql":
        parts = urlsplit(os.environ["DATABASE_URL"])
        return ServerDatabase(urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"])), None)
    # The suite's SQLite database lives in memory: the servers get a file of their own, a copy of
    # it as migrate left it (a `manage.py migrate` process cost 5 s of CPU more).
    sqlite_file = tmp_path_factory.mktemp("servers") / "db.sqlite3"
    with django_db_blocker.unblock():
        connection.ensure_connection()
        with sqlite3.connect(sqlite_file) as copy:
            connection.connection.backup(copy)
        copy.close()
    return ServerDatabase(f"sqlite:///{sqlite_file}", sqlite_file)


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request, server_database, tmp_path_factory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp(request.param) / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, *(arg.format(port=port) for arg in SERVERS[request.param])],
            cwd=ROOT,
            env=server_env(server_database.url),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"{request.param} did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield Server(port, server_database, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def raw_post(port: int, body: bytes, *, content_length: int | None, signature: str | None = None) -> int:
    """POST the body as a client would on the wire: chunked when `content_length` is None.

    The body is sent from a thread while this one reads: a server that refuses a large body
    answers and closes before it has read it all, and the answer must be read, not reset.
    """
    framing = "Transfer-Encoding: chunked" if content_length is None else f"Content-Length: {content_length}"
    head = (
        "POST /webhooks/meta/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: {signature or meta_signature(body)}\r\n{framing}\r\nConnection: close\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)

    def send() -> None:
        try:
            sock.sendall(head.encode())
            for start in range(0, len(body), 64 * 1024):
                piece = body[start : start + 64 * 1024]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if content_length is None else piece)
            if content_length is None:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # refused before the end of the body: the server closed the connection

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status
    finally:
        sock.close()
        sender.join(timeout=10)


def ten_megabytes() -> bytes:
    return meta_body("text").replace(b"opening hours", b"z" * (10 * 1024 * 1024))


@pytest.mark.slow
@REAL_COMMITS
def test_a_small_signed_chunked_body_is_accepted_by_a_real_server(server):
    before = server.database.processed_count()

    # A message id of its own: both servers share one database, and a repeat would be a duplicate.
    body = meta_text("Do you open on Sundays?", f"wamid.chunked.{uuid.uuid4().hex}")

    status = raw_post(server.port, body, content_length=None)

    assert status == 200, server.log.read_text(errors="replace")[-2000:]
    assert server.database.processed_count() == before + 1


@pytest.mark.slow
@REAL_COMMITS
def test_a_10_mb_chunked_body_is_refused_with_413_by_a_real_server(server):
    before = server.database.processed_count()

    assert raw_post(server.port, ten_megabytes(), content_length=None) == 413
    assert server.database.processed_count() == before


@pytest.mark.slow
@REAL_COMMITS
def test_a_10_mb_body_with_honest_content_length_is_refused_with_413_by_a_real_server(server):
    body = ten_megabytes()

    assert raw_post(server.port, body, content_length=len(body)) == 413


@pytest.mark.slow
@REAL_COMMITS
def test_an_understated_content_length_is_refused_by_a_real_server(server):
    # The server frames the declared 100 bytes (the rest is no part of this request), so the
    # app never sees the excess: those 100 bytes fail the signature over the whole body.
    before = server.database.processed_count()

    assert raw_post(server.port, ten_megabytes(), content_length=100) == 403
    assert server.database.processed_count() == before
