"""Deleting media files from storage once the rows that pointed at them are gone."""

from __future__ import annotations

import logging

from django.core.files.storage import default_storage

logger = logging.getLogger(__name__)


def delete_stored_files(*, names: list[str]) -> int:
    """Delete these files from the default storage; returns how many failed (each is logged)."""
    failed = 0
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            failed += 1
            logger.exception("Could not delete media file %s; delete it from the storage by hand.", name)
    return failed
