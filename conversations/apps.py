from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversations"

    def ready(self) -> None:
        # Registers the system checks, and the tasks that dispatch.py enqueues by name.
        from conversations import checks, tasks  # noqa: F401
        from conversations.media import signals  # noqa: F401
