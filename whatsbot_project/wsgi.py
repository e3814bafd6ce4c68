"""WSGI entry point: serves the HTTP side (webhooks, admin) under gunicorn in production."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")

application = get_wsgi_application()
