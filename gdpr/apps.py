from django.apps import AppConfig


class GdprConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "gdpr"
    verbose_name = "Data protection (GDPR)"

    def ready(self) -> None:
        # Registers the tasks enqueued by name (remote deletions) and run by beat (retention).
        from conversations.services.captures import refuse_captures_when
        from conversations.services.orphans import remote_copies_orphaned
        from gdpr import tasks  # noqa: F401
        from gdpr.remote import queue_orphaned_copies
        from gdpr.traces import is_from_erased_subject

        # What a reply in flight made after its conversation was erased is deleted at the processor.
        remote_copies_orphaned.connect(queue_orphaned_copies, dispatch_uid="gdpr.queue_orphaned_copies")
        # A late delivery or status naming an erased person is not captured again.
        refuse_captures_when(is_from_erased_subject)
