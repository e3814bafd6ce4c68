from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "profiles"
    verbose_name = "Client profiles"

    def ready(self) -> None:
        # Registers the tasks that services enqueue by name (extraction, GDPR deletions).
        from profiles import tasks  # noqa: F401
