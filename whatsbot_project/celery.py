"""The Celery app. Broker from settings (in-memory by default, Redis in production)."""

from __future__ import annotations

import logging
import os
import sys

from celery import Celery, signals
from celery.signals import setup_logging

from conversations.bootsteps import BrokerConnected, InboundRecorder, LocalRuns, Recovery
from telemetry import context
from whatsbot_project.startup import configuration_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")

app = Celery("whatsbot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add(InboundRecorder)
app.steps["worker"].add(Recovery)
app.steps["worker"].add(LocalRuns)
app.steps["consumer"].add(BrokerConnected)


# Database connections live across tasks, as across the requests of a web worker: Celery's
# Django fixup would close them around every task (CELERY_DB_REUSE_MAX in settings turns
# that off), and a new PostgreSQL connection per task costs the worker and the server more
# than most tasks. Django's own request rules apply instead: a connection older than
# CONN_MAX_AGE, or one that failed, is closed before and after each task and opened anew.
@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_old_connections(sender=None, **kwargs) -> None:
    if sender is not None and getattr(sender.request, "is_eager", False):
        return  # runs inside the caller's transaction (tests, `manage.py run` without a worker)
    from django.db import close_old_connections

    close_old_connections()


@signals.worker_init.connect
def _allow_database_calls_beside_the_live_sender(**kwargs) -> None:
    """Under the gevent pool every thread is a greenlet of one OS thread, and the live inbox's
    sender runs an asyncio loop in one of them (channels_app/live.py) once an event is sent:
    Django then sees that loop running in every task and refuses all their database calls as
    async code (SynchronousOnlyOperation), which they are not. Its check is off in this process."""
    if _is_gevent_patched():
        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        _keep_each_greenlets_connection()


def _keep_each_greenlets_connection() -> None:
    """Django keeps connections in an asgiref Local that is per thread while no event loop runs
    in the thread, and per context once one does: under gevent the live sender's loop runs in
    every greenlet's thread, so from its start a greenlet in a transaction was handed a new
    connection for its next statement. Its transaction stayed open with its row locks (the
    deliveries a batch had locked were skipped by every recorder for good) and its later writes
    committed on their own (a message whose conversation never committed). Here the store is
    per greenlet (gevent's thread-local), whatever runs."""
    import threading

    from django.db import connections

    connections.close_all()
    connections._connections = threading.local()


def _is_gevent_patched() -> bool:
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return monkey.is_module_patched("threading")


# The request id travels from the webhook (or API call) to every task it causes, and from a task
# to the tasks it enqueues, in a message header: their log lines carry the id of the request.
@signals.before_task_publish.connect
def _add_request_id(headers=None, **kwargs) -> None:
    request_id = context.request_id.get()
    if request_id and headers is not None:
        headers.setdefault(context.TASK_HEADER, request_id)


@signals.task_prerun.connect
def _bind_task_context(task_id=None, task=None, **kwargs) -> None:
    request = task.request
    # An eager task runs inside its caller (a request, a test): it keeps the caller's request id.
    request_id = context.request_id.get() if request.is_eager else (request.get(context.TASK_HEADER) or "")
    request.log_context = context.enter(request=request_id, task=task_id or "")


@signals.task_postrun.connect
def _unbind_task_context(task=None, **kwargs) -> None:
    tokens = getattr(task.request, "log_context", None)
    if tokens:
        context.leave(tokens)


@signals.worker_init.connect
@signals.beat_init.connect
def _remove_stale_metric_files(**kwargs) -> None:
    """At start, before the pool runs anything: the metric files of processes gone since the
    last run would stay in /metrics' sums forever (telemetry/multiprocess.py)."""
    from telemetry.metrics import MULTIPROCESS_DIR
    from telemetry.multiprocess import remove_stale_files

    if MULTIPROCESS_DIR:
        remove_stale_files(MULTIPROCESS_DIR)


@signals.worker_init.connect
def _check_the_pools_fit_the_slots(sender=None, **kwargs) -> None:
    """WORKER_CONCURRENCY sizes the process's Redis and provider connection pools (settings): a
    worker given more slots with `--concurrency` would fail acknowledgements in a surge. It stops
    before it takes any task, saying what to set."""
    from django.conf import settings

    if sender is not None and sender.concurrency > settings.WORKER_CONCURRENCY:
        sys.exit(
            f"whatsbot cannot start: the worker has {sender.concurrency} slots (--concurrency) but "
            f"WORKER_CONCURRENCY is {settings.WORKER_CONCURRENCY}, which sizes its connection pools: "
            f"set WORKER_CONCURRENCY={sender.concurrency}, or leave --concurrency out to run that many."
        )


@signals.worker_init.connect
def _import_the_model_sdk(**kwargs) -> None:
    """conversations.ai imports the OpenAI SDK when it first calls the model (0.5 s that commands
    and web processes need not pay). The worker imports it before it forks its processes, so no
    reply waits for it."""
    import openai  # noqa: F401


@app.on_configure.connect
def _stop_on_configuration_error(sender, **kwargs) -> None:
    """`celery worker` and `celery beat` read the settings first thing, here: a configuration
    error is one line, not a traceback."""
    if error := configuration_error():
        sys.exit(error)


@setup_logging.connect
def _use_django_logging(**kwargs) -> None:
    """Worker and beat log through settings.LOGGING (its masking filter included) instead of
    handlers of Celery's own: connecting this signal is how Celery is told to leave logging be."""
    from django.conf import settings

    from whatsbot_project.logging import configure_logging

    configure_logging(settings.LOGGING)
    if settings.LOG_FORMAT == "json":
        _print_through_logging()


def _print_through_logging() -> None:
    """LOG_FORMAT=json: what a worker or beat prints instead of logging becomes log records too,
    so every line is one JSON object. Celery's own logging would redirect stdout and stderr
    (worker_redirect_stdouts: library prints, gevent's reports of a failed callback); ours has
    to ask. The worker's shutdown notices ("Warm shutdown") are written by `safe_say` straight
    to the file descriptor from the signal handler, past any redirect: they are logged instead.
    The start banners are left to `--quiet` (docker-compose.yml)."""
    from celery.apps import worker

    if app.conf.worker_redirect_stdouts:
        app.log.redirect_stdouts(app.conf.worker_redirect_stdouts_level)
    notices = logging.getLogger("celery.apps.worker")
    worker.safe_say = lambda msg, f=None: notices.info(msg.strip())
    if _is_gevent_patched():
        _log_gevent_failures()


def _log_gevent_failures() -> None:
    """gevent's hub prints a greenlet's uncaught error line by line to stderr, which the redirect
    turned into one record per line: it is one record with its traceback instead. The greenlet
    is named by its type only: its repr shows the call's arguments (bodies, numbers)."""
    from gevent.hub import Hub

    failures = logging.getLogger("gevent.hub")

    def log_failure(hub, context, kind, value, tb) -> None:
        where = context if isinstance(context, str) else type(context).__name__
        failures.error("%s failed with %s", where, getattr(kind, "__name__", "exception"), exc_info=(kind, value, tb))

    Hub.print_exception = log_failure
