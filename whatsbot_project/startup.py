"""How every entry point stops on a configuration error (SECRET_KEY unset with DEBUG off, …):
one clear line saying what to set, not a traceback. Used by manage.py, asgi.py (daphne),
wsgi.py (gunicorn) and celery.py (worker and beat)."""

from __future__ import annotations


def configuration_error() -> str | None:
    """Read the settings now; the line to stop with if they cannot be used, else None."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS  # noqa: B018 -- the first read of a setting loads them all
    except ImproperlyConfigured as error:
        return f"whatsbot cannot start: {error}"
    return None
