"""gunicorn's settings file: gunicorn reads it from its working directory (the app's root)."""

import gc
import os
import sys


def on_starting(server) -> None:
    """Read the settings once in the master, before any worker starts: a configuration error (no
    SECRET_KEY in production) stops gunicorn with one line, instead of each worker failing."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")
    from whatsbot_project.startup import configuration_error

    if error := configuration_error():
        sys.exit(error)
    if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Before any worker starts: the metric files of processes gone since the last run would
        # stay in /metrics' sums forever (telemetry/multiprocess.py).
        from telemetry.multiprocess import remove_stale_files

        remove_stale_files(directory)


def post_fork(server, worker) -> None:
    """The worker loads the app next: no cyclic garbage collection until it is loaded (see
    post_worker_init). The collector scanned what the app allocates again and again while it was
    made, some 0.4 s of CPU a worker start (manage.py does the same)."""
    gc.disable()


def post_worker_init(worker) -> None:
    """The app is loaded (its URLs and views too): what it allocated lives as long as the worker,
    so it leaves the cyclic garbage collector's scans. Each full collection walked it all: the
    live inbox's 200-row page had a p99 of 184-228 ms against a p50 of 51-57 ms, 85-161 ms
    with the heap frozen (bench/inbox.py in one process, bench/RESULTS.md)."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports every view now, not at the first request)
    gc.freeze()
    gc.enable()


def child_exit(server, worker) -> None:
    """A worker ended: its live gauges leave /metrics (its counters stay in the sums until the
    next start, as prometheus-client's multiprocess mode asks)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        from telemetry.multiprocess import process_name

        multiprocess.mark_process_dead(process_name(worker.pid))


def _logconfig_dict() -> dict:
    """With LOG_FORMAT=json, gunicorn's own lines (start, workers, access log) are JSON objects
    through the app's formatter and masking filter, like every other line."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")
    from whatsbot_project.startup import configuration_error

    if configuration_error():
        return {}  # on_starting stops with the one line
    from django.conf import settings

    if settings.LOG_FORMAT != "json":
        return {}
    logging = settings.LOGGING
    to_console = {"handlers": ["console"], "level": "INFO", "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": logging["filters"],
        "formatters": logging["formatters"],
        "handlers": logging["handlers"],
        "root": {"handlers": ["console"], "level": "INFO"},
        "loggers": {"gunicorn.error": to_console, "gunicorn.access": to_console},
    }


logconfig_dict = _logconfig_dict()
