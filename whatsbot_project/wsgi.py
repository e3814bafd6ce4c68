"""WSGI entry point: serves the HTTP side (webhooks, admin) under gunicorn in production."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from whatsbot_project.startup import configuration_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")

if error := configuration_error():
    print(error, file=sys.stderr, flush=True)
    # gunicorn restarts a worker that exits, in a loop, except with its WORKER_BOOT_ERROR (3):
    # then it stops the server ("Worker failed to boot").
    sys.exit(3)


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class TerminatedInputMiddleware:
    """Hand Django the body of a request sent without Content-Length (chunked), up to the limit.

    Django's WSGIRequest reads CONTENT_LENGTH bytes and nothing when it is absent, so under
    gunicorn a chunked webhook arrived empty (and failed its signature: 403, even at 10 MB).
    gunicorn marks its input `wsgi.input_terminated` (it ends where the body ends), so the body
    can be read here: up to WEBHOOK_MAX_BODY_BYTES + 1 bytes, 413 past the limit, otherwise a
    buffered input with its real length. Requests with Content-Length pass through untouched
    (Django counts what it reads; a server never delivers more than the declared length).
    The limit holds for every chunked request; browsers send Content-Length with their uploads.
    """

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("wsgi.input_terminated") and not environ.get("CONTENT_LENGTH"):
            limit = settings.WEBHOOK_MAX_BODY_BYTES
            body = _read_at_most(environ["wsgi.input"], limit + 1)
            if len(body) > limit:
                text = f"body over {limit} bytes".encode()
                start_response(
                    "413 Request Entity Too Large",
                    [("Content-Type", "text/plain"), ("Content-Length", str(len(text))), ("Connection", "close")],
                )
                return [text]
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


def _read_at_most(stream: Any, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining > 0:
        chunk = stream.read(min(remaining, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


application = TerminatedInputMiddleware(get_wsgi_application())
