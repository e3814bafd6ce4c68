"""Django admin for staff: conversations with their messages, client profiles, media, audit log."""

from conversations.admin import conversation, profile  # noqa: F401  (each module registers its models)
from conversations.media import admin as media_admin  # noqa: F401
