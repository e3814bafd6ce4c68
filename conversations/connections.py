"""Database connections across network waits."""

from __future__ import annotations

from django.db import connection


def release_connection() -> None:
    """Give this thread's database connection back to the pool before waiting seconds on the
    network (the model, a provider), so a pool much smaller than the worker's concurrency
    serves it (DATABASE_POOL_SIZE). Without a pool this does nothing: closing would cost a new
    connection per wait. Inside a transaction the connection is kept, as it must be."""
    if connection.settings_dict.get("OPTIONS", {}).get("pool") and not connection.in_atomic_block:
        connection.close()
