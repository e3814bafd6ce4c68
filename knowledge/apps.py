from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge base"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The tasks services enqueue by name (vector store sync) must be registered.
        from knowledge import tasks  # noqa: F401
