"""What every app's tests share: the fixture plugins, commit hooks run where a commit would be,
a fast password hasher, one migrated test database copied to every xdist worker (SQLite), the
rows migrate left written back after each flush, and one channel-layer prefix per xdist worker.

Most tests run inside a transaction rolled back at the end (plain `django_db`). Those that need
committed data (another thread, process, live server or browser reads or writes it) say so with
`django_db(transaction=True)` and a comment; tests that start processes, servers or browsers are
marked `slow`.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import sys
import tempfile
from pathlib import Path

import pytest

pytest_plugins = [
    "conversations.tests.fakes",
    "channels_app.tests.browser_support",
]

logger = logging.getLogger("django.db.backends.base")

# Bytecode and rewritten asserts cached even where the shell sets PYTHONDONTWRITEBYTECODE (as
# container images often do; `make test` unsets it too): every xdist worker imports every test
# module, and rewriting their asserts and compiling what they import cost each worker some 3 s
# of CPU, every run.
sys.dont_write_bytecode = False


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """pytest-django puts transactional tests after the others (their flush would empty what the
    others expect, such as data migrations' rows) and tests without a database last. Slow tests
    without a database (they start processes: the README's commands, a whole running system) go
    first instead, those allowed the longest (their timeout) first: under xdist, handed out one
    at a time (`--maxschedchunk 1`), they then run on both workers beside the rest instead of
    trailing it.

    The browser tests (all transactional) are moved up to the first of them, one run: a worker
    shares its Chromium between consecutive browser tests only (browser_support.py), and
    interleaved with other tests the suite started it 7 times, not 3 (1 s of CPU each)."""
    default_timeout = float(config.getini("timeout") or 0)
    uses_browser = ["browser_page" in getattr(item, "fixturenames", ()) for item in items]
    first_browser_test = uses_browser.index(True) if any(uses_browser) else 0

    def order(position: int) -> tuple[bool, float, int]:
        item = items[position]
        uses_db = item.get_closest_marker("django_db") is not None or bool(
            {"db", "transactional_db", "live_server"} & set(getattr(item, "fixturenames", ()))
        )
        if item.get_closest_marker("slow") is None or uses_db:
            return (True, 0.0, first_browser_test if uses_browser[position] else position)
        timeout = item.get_closest_marker("timeout")
        return (False, -float(timeout.args[0] if timeout and timeout.args else default_timeout), 0)

    items[:] = [items[position] for position in sorted(range(len(items)), key=order)]


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject.toml): one worker per core for the quick loop (`-m "not slow"`: its
    tests keep a core busy, and a third worker on two cores only added its start-up, some 5 s
    of CPU); one more when slow tests run, which wait on processes, servers and browsers while
    the extra worker runs others. At most four: `cache_per_worker` has four Redis databases."""
    cores = len(os.sched_getaffinity(0))
    quick_loop = config.getoption("markexpr").replace(" ", "") == "notslow"
    return min(cores if quick_loop else cores + 1, 4)


def pytest_configure(config):
    """Collecting imports every test module and makes every test item, objects that live as long
    as the session: in a process that collects (an xdist worker, or -n0; not xdist's controller)
    the cyclic garbage collector is off until it is done, then leaves them out of its scans
    (pytest_collection_finish), as manage.py does for the app. Collecting took 2.8 s of CPU, 1.9 s
    so, and each later full collection walks less."""
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        gc.disable()


def pytest_collection_finish(session):
    gc.freeze()
    gc.enable()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings):
    """On SQLite, the test database is migrated once for every run with the same code, not once
    per run nor per xdist worker: the first process to need it migrates and leaves a copy in the
    machine's temporary directory, named by a digest of what `migrate` reads (`_migration_inputs`);
    every other one, of this run or a later one, reads that copy into its in-memory database (as
    Django's own parallel runner clones one migrated database). Migrating cost some 1.7 s of CPU,
    while the run's other workers, at their first database test too, waited for it."""
    from django.conf import settings as django_settings
    from django.db import connections

    connection = connections["default"]
    if connection.vendor != "sqlite" or not connection.creation.is_in_memory_db(
        connection.creation._get_test_db_name()
    ):
        yield
        return
    MIGRATED_DATABASES.mkdir(exist_ok=True)
    migrated = MIGRATED_DATABASES / f"{_migration_inputs()}.sqlite3"
    create_test_db = connection.creation.create_test_db

    def create_or_copy(*args, **kwargs):
        import fcntl
        import sqlite3

        with open(f"{migrated}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not migrated.exists():
                name = create_test_db(*args, **kwargs)
                written = migrated.with_suffix(f".{os.getpid()}")
                with sqlite3.connect(written) as copy:
                    connection.connection.backup(copy)
                copy.close()
                written.replace(migrated)  # whole or not at all: an interrupted run leaves no half copy
                _forget_old_databases(keep=migrated)
                return name
        name = connection.creation._get_test_db_name()
        connection.close()
        connection.settings_dict["NAME"] = name
        django_settings.DATABASES[connection.alias]["NAME"] = name
        connection.ensure_connection()
        with sqlite3.connect(f"file:{migrated}?mode=ro", uri=True) as original:
            original.backup(connection.connection)
        original.close()
        return name

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(connection.creation, "create_test_db", create_or_copy)
        yield


MIGRATED_DATABASES = Path(tempfile.gettempdir()) / "whatsbot-test-databases"


def _migration_inputs() -> str:
    """A digest of everything an empty database's `migrate` depends on: Python, SQLite and Django,
    the settings package, and every installed app's modules but its tests (migrations, models, the
    `post_migrate` handlers that write content types, permissions and the staff roles)."""
    import hashlib
    import sqlite3

    import django
    from django.apps import apps
    from django.conf import settings as django_settings

    project = Path(django_settings.BASE_DIR)
    digest = hashlib.sha256(f"{sys.version} {sqlite3.sqlite_version} {django.__version__}".encode())
    folders = {Path(app.path) for app in apps.get_app_configs()} | {project / "whatsbot_project"}
    for folder in sorted(folders):
        for module in sorted(folder.rglob("*.py")):
            if "tests" in module.relative_to(folder).parts:
                continue
            digest.update(str(module.relative_to(folder.parent)).encode())
            if folder.parent == project:  # the project's apps (a .venv may lie in the project too)
                digest.update(module.read_bytes())
            else:  # an installed package's (reinstalled, upgraded): its files' sizes and times
                stat = module.stat()
                digest.update(f"{stat.st_size} {stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _forget_old_databases(*, keep: Path, count: int = 6) -> None:
    """The newest few copies stay (other checkouts and branches on this machine have their own);
    older ones go."""
    copies = sorted(MIGRATED_DATABASES.glob("*.sqlite3"), key=lambda path: path.stat().st_mtime, reverse=True)
    for old in copies[count:]:
        if old != keep:
            old.unlink(missing_ok=True)
            Path(f"{old}.lock").unlink(missing_ok=True)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """After a transactional test the tables are emptied (flush) and, in Django, every app's
    `post_migrate` handlers run again to put back what `migrate` left: content types,
    permissions and the roles (accounts/roles.py), some 0.15 s of ORM work per test. Here the
    rows `migrate` left are copied once, when the test database is made, and written back after
    each flush instead: every transactional test starts from the freshly migrated database, as the
    first one does."""
    from django.core.management.commands import flush
    from django.db import connections

    with django_db_blocker.unblock():
        snapshots = {alias: _table_rows(connections[alias]) for alias in connections}

    def restore_migrated_rows(verbosity, interactive, db, **kwargs):
        _write_rows(connections[db], snapshots[db])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flush, "emit_post_migrate_signal", restore_migrated_rows)
        yield


def _table_rows(connection) -> dict[str, tuple[list[str], list[tuple] | bytes]]:
    """The rows of every table a flush empties, by table: its column names and rows (PostgreSQL:
    COPY's text, which keeps every type exactly)."""
    tables = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.django_table_names(only_existing=True, include_views=False):
            quoted = connection.ops.quote_name(table)
            # The columns a query returns: SQLite's get_table_description parses each table's SQL
            # (sqlparse) for collations, 0.3 s of CPU for every worker.
            cursor.execute(f"SELECT * FROM {quoted} WHERE 1 = 0")  # noqa: S608 (a name from introspection)
            columns = [column[0] for column in cursor.description]
            names = ", ".join(connection.ops.quote_name(c) for c in columns)
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {quoted} ({names}) TO STDOUT") as copy:
                    rows = b"".join(bytes(chunk) for chunk in copy)
            else:
                cursor.execute(f"SELECT {names} FROM {quoted}")  # noqa: S608 (names from introspection)
                rows = cursor.fetchall()
            if rows:
                tables[table] = (columns, rows)
    return tables


def _write_rows(connection, tables) -> None:
    """Put back `_table_rows`' rows, with their ids (foreign keys are checked at commit)."""
    from django.db import transaction

    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for table, (columns, rows) in tables.items():
            quoted = connection.ops.quote_name(table)
            names = ", ".join(connection.ops.quote_name(c) for c in columns)
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {quoted} ({names}) FROM STDIN") as copy:
                    copy.write(rows)
            else:
                marks = ", ".join(["%s"] * len(columns))
                cursor.executemany(f"INSERT INTO {quoted} ({names}) VALUES ({marks})", rows)  # noqa: S608 (ditto)


@pytest.fixture(autouse=True)
def commit_hooks_at_commit_points(request):
    """Run `transaction.on_commit` callbacks where production would commit, inside a test's
    transaction: at once when no atomic block of the code under test is open (autocommit), and
    when its outermost atomic block exits (callbacks of a rolled-back block are dropped, as
    Django does). Eager tasks (the record, reply and send tasks, live-inbox events) thus run
    exactly where they run in a request, in the same order.

    `django_capture_on_commit_callbacks` would run them only when its block ends: a webhook with
    two messages would record both before replying to the first, which is not what happens.
    Transactional tests commit for real and are left alone.
    """
    uses_db = {"db", "transactional_db", "live_server"} & set(request.fixturenames)
    if request.node.get_closest_marker("django_db") is None and not uses_db:
        yield
        return
    request.getfixturevalue("db")
    from django.db import connections, transaction
    from django.db.backends.base.base import BaseDatabaseWrapper

    # The test's own atomic blocks, and the callbacks registered before it, per connection.
    base = {
        conn: (len(conn.atomic_blocks), len(conn.run_on_commit))
        for conn in connections.all(initialized_only=True)
        if conn.in_atomic_block
    }
    if not base:  # transaction=True: real commits run the callbacks
        yield
        return

    def run_committed(conn) -> None:
        depth, start = base[conn]
        if len(conn.atomic_blocks) != depth or conn.needs_rollback:
            return
        committed = conn.run_on_commit[start:]
        del conn.run_on_commit[start:]
        for _, func, robust in committed:  # callbacks registered meanwhile run at their own commit
            if not robust:
                func()
                continue
            try:
                func()
            except Exception as exc:
                logger.error("Error calling %s in on_commit() (%s).", func.__qualname__, exc, exc_info=True)

    original_on_commit = BaseDatabaseWrapper.on_commit
    original_exit = transaction.Atomic.__exit__

    def on_commit(self, func, robust=False):
        original_on_commit(self, func, robust)
        if self in base:
            run_committed(self)

    def atomic_exit(self, exc_type, exc_value, traceback):
        original_exit(self, exc_type, exc_value, traceback)
        conn = transaction.get_connection(self.using)
        if conn in base:
            run_committed(conn)

    BaseDatabaseWrapper.on_commit = on_commit
    transaction.Atomic.__exit__ = atomic_exit
    try:
        yield
    finally:
        BaseDatabaseWrapper.on_commit = original_on_commit
        transaction.Atomic.__exit__ = original_exit


@pytest.fixture
def admin_client(client, admin_user):
    """pytest-django's superuser client, after the second factor a superuser must give
    (accounts/roles.py): a session with a confirmed authenticator app."""
    from accounts.tests.helpers import log_in

    return log_in(client, admin_user)


@pytest.fixture(autouse=True, scope="session")
def session_settings(tmp_path_factory):
    """- MD5 passwords: users are made in many tests, and PBKDF2's million rounds cost about 0.2 s
      a password here. No test is about hashing; logging in by password still runs.
    - An empty STATIC_ROOT: WhiteNoise scans it each time a test client builds its middleware
      (every test), and `manage.py run` fills the tree's own with collectstatic. No test serves
      collected files; pages under test link the source files.
    """
    from django.test import override_settings

    with override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        STATIC_ROOT=tmp_path_factory.mktemp("static_root"),
    ):
        yield


@pytest.fixture(scope="session")
def media_roots(tmp_path_factory):
    return tmp_path_factory.mktemp("media"), itertools.count()


@pytest.fixture(autouse=True)
def media_root(settings, media_roots):
    """Uploads and attachments go to the test's own directory, never the tree's media/. Named,
    not made (storage makes it on the first file): `tmp_path` for every test cost a directory
    and a symbolic link (pytest's "current") of up to 5 ms each on this disk."""
    base, numbers = media_roots
    settings.MEDIA_ROOT = base / str(next(numbers))
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True, scope="session")
def channel_layer_per_worker():
    """xdist workers share REDIS_URL: each gets its own channel-layer prefix, so one worker's
    groups ("staff", a conversation's) never receive another worker's events."""
    from django.conf import settings
    from django.test import override_settings

    layer = settings.CHANNEL_LAYERS["default"]
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None or "CONFIG" not in layer:
        yield
        return
    prefixed = {**layer, "CONFIG": {**layer["CONFIG"], "prefix": f"asgi-test-{worker}"}}
    with override_settings(CHANNEL_LAYERS={**settings.CHANNEL_LAYERS, "default": prefixed}):
        yield


@pytest.fixture(autouse=True)
def channel_layer_per_test():
    """On Redis, every test gets a channel-layer instance of its own. One instance keeps receive
    state (locks, the loop receiving) that may serve one event loop at a time, and this process
    has several: daphne's thread for the browser tests, the tests' own loops for socket tests,
    the live sender's thread. A socket test receiving while a page's socket from an earlier
    browser test still did failed on "Two event loops…" or a lock "bound to a different event
    loop". In production a process has one loop that receives."""
    from channels import DEFAULT_CHANNEL_LAYER
    from channels.layers import channel_layers

    if "CONFIG" not in channel_layers.configs.get(DEFAULT_CHANNEL_LAYER, {}):
        yield
        return
    channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)  # built anew on first use
    yield
    channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)


@pytest.fixture(autouse=True, scope="session")
def cache_per_worker():
    """xdist workers share REDIS_URL: each gets a Redis database of its own for the cache, so one
    worker's marks (an open live inbox, rate-limit counts) and `cache.clear()` never reach the
    other's tests."""
    from urllib.parse import urlsplit

    from django.conf import settings
    from django.test import override_settings

    cache = settings.CACHES["default"]
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None or not cache["BACKEND"].endswith("RedisCache"):
        yield
        return
    url = urlsplit(cache["LOCATION"])
    database = 15 - int(worker.removeprefix("gw")) % 4  # the top four: beside the broker's and the benches' (11)
    location = url._replace(path=f"/{database}").geturl()
    with override_settings(CACHES={**settings.CACHES, "default": {**cache, "LOCATION": location}}):
        yield


@pytest.fixture(autouse=True)
def nobody_watching_after_the_test():
    """A live-inbox test's presence mark lasts 30 s: the next test starts with no page open."""
    yield
    from django.core.cache import cache

    from conversations.notify import PRESENCE_KEY

    cache.delete(PRESENCE_KEY)
