"""The first middleware of every request.

It answers the operations endpoints itself, before SecurityMiddleware (HTTPS redirect) and
CommonMiddleware (ALLOWED_HOSTS): docker's health check and Prometheus call them by container
address over plain HTTP. Every other request gets a request id (the proxy's X-Request-ID when
plausible, else a new one), bound for its log lines and the Celery tasks it enqueues, and
returned in the response's X-Request-ID.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ops import views
from telemetry import context

ENDPOINTS: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz/": views.healthz,
    "/readyz/": views.readyz,
    "/metrics": views.metrics,
}


class OperationsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        endpoint = ENDPOINTS.get(request.path_info)
        if endpoint is not None and request.method in ("GET", "HEAD"):
            return endpoint(request)
        request_id = context.new_request_id(request.headers.get(context.HEADER))
        tokens = context.enter(request=request_id)
        try:
            response = self.get_response(request)
        finally:
            context.leave(tokens)
        response[context.HEADER] = request_id
        return response
