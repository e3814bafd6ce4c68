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
