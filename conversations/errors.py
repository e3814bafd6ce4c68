"""What every module that calls an outside service (the providers, the model) shares."""

from __future__ import annotations


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the delta-seconds form providers use), else None."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class RemoteDeletionError(Exception):
    """A processor did not delete a copy it holds; `is_transient` says whether trying later may work."""

    def __init__(self, reason: str, *, is_transient: bool) -> None:
        super().__init__(reason)
        self.is_transient = is_transient
