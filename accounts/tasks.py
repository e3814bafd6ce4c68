"""Celery tasks of the staff accounts app."""

from __future__ import annotations

from celery import shared_task

from accounts.audit import purge_security_events


@shared_task
def purge_expired_security_events() -> int:
    return purge_security_events()
