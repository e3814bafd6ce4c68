"""Django admin for staff: conversations with their messages, client profiles, media, audit log."""

from conversations.admin import conversation, helpdesk, message, profile  # noqa: F401  (each registers its models)
from conversations.media import admin as media_admin  # noqa: F401
