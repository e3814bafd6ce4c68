"""WSGI entry point: serves the HTTP side (webhooks, admin) under gunicorn in production."""

import os
import sys

from django.core.wsgi import get_wsgi_application

from whatsbot_project.startup import configuration_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")

if error := configuration_error():
    print(error, file=sys.stderr, flush=True)
    # gunicorn restarts a worker that exits, in a loop, except with its WORKER_BOOT_ERROR (3):
    # then it stops the server ("Worker failed to boot").
    sys.exit(3)

application = get_wsgi_application()
