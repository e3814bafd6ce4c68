"""The Celery app. Broker from settings (in-memory by default, Redis in production)."""

from __future__ import annotations

import os

from celery import Celery

from conversations.bootsteps import InboundRecorder

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")

app = Celery("whatsbot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add(InboundRecorder)
