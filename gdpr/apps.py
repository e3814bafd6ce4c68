from django.apps import AppConfig


class GdprConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "gdpr"
    verbose_name = "Data protection (GDPR)"

    def ready(self) -> None:
        # Registers the tasks enqueued by name (remote deletions) and run by beat (retention).
        from gdpr import tasks  # noqa: F401
