"""ASGI entry point for daphne: HTTP and the staff websockets."""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")

# Django must be set up before the consumers (and their models) are imported.
django_asgi_app = get_asgi_application()

# Under ASGI, Django runs each request's sync code on a thread of its own, so persistent
# database connections pile up until PostgreSQL refuses clients (seen in bench/ingest.py with
# daphne). Django's docs: disable them under ASGI. Connections read this when they open.
for database in settings.DATABASES.values():
    database["CONN_MAX_AGE"] = 0

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
