"""ASGI entry point for daphne: HTTP and the staff websockets."""

import os
import sys

from django.core.asgi import get_asgi_application

from whatsbot_project.startup import configuration_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")
# Before the settings are read: they disable persistent database connections under ASGI
# (CONN_MAX_AGE, see settings.py).
os.environ.setdefault("WHATSBOT_ASGI", "1")

if error := configuration_error():
    sys.exit(error)
if metrics_directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # daphne is one process: its start is the only moment to remove what its last run left
    # (telemetry/multiprocess.py).
    from telemetry.multiprocess import remove_stale_files

    remove_stale_files(metrics_directory)

# Django must be set up before the consumers (and their models) are imported.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from channels_app.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
