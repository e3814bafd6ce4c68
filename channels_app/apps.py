from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "channels_app"
    verbose_name = "Live inbox"

    def ready(self) -> None:
        # Connects the receivers, and registers the tasks enqueued by name (conversations/notify.py).
        from channels_app import signals, tasks  # noqa: F401
