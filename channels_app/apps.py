from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "channels_app"
    verbose_name = "Live inbox"

    def ready(self) -> None:
        from channels_app import signals  # noqa: F401  (connects the receivers)
