"""Celery tasks of the profiles app: thin, an id in, one service call."""

from __future__ import annotations

from celery import shared_task

from profiles.services import extract_profile_from_message


# acks_late is safe: the merge is idempotent (the same answer writes the same values).
@shared_task(acks_late=True)
def extract_client_profile(message_id: int) -> None:
    extract_profile_from_message(message_id=message_id)
