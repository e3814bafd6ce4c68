"""The Celery app. Broker from settings (in-memory by default, Redis in production)."""

from __future__ import annotations

import os
import sys

from celery import Celery
from celery.signals import setup_logging

from conversations.bootsteps import BrokerConnected, InboundRecorder, Recovery
from whatsbot_project.startup import configuration_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")

app = Celery("whatsbot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add(InboundRecorder)
app.steps["worker"].add(Recovery)
app.steps["consumer"].add(BrokerConnected)


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
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
