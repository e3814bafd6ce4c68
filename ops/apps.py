from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Health, readiness and metrics endpoints, the request id of every request."""

    name = "ops"
    verbose_name = "Operations"
