"""Liveness, readiness and metrics: plain views, served before host and HTTPS checks
(ops/middleware.py), so a container's health check and Prometheus reach them by address."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from ops.exporter import is_scrape_allowed, render_metrics
from ops.health import check_readiness, readiness_report


def healthz(request: HttpRequest) -> HttpResponse:
    """The process answers: nothing else is checked (a restart would not fix anything else)."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    report = readiness_report(check_readiness())
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    if not is_scrape_allowed(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
