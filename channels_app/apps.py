from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "channels_app"
    verbose_name = "Live inbox"

    def ready(self) -> None:
        from channels_app import live, signals, tasks  # noqa: F401  (receivers, tasks enqueued by name)
        from conversations import notify

        # Services notify through conversations/notify.py, which cannot import this app.
        notify.set_publisher(live.publish)
