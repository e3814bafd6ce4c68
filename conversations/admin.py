"""Admin registrations; each feature keeps its own module."""

from conversations import admin_media  # noqa: F401
