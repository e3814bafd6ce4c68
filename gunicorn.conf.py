"""gunicorn's settings file: gunicorn reads it from its working directory (the app's root)."""

import os
import sys


def on_starting(server) -> None:
    """Read the settings once in the master, before any worker starts: a configuration error (no
    SECRET_KEY in production) stops gunicorn with one line, instead of each worker failing."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")
    from whatsbot_project.startup import configuration_error

    if error := configuration_error():
        sys.exit(error)


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
