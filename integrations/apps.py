from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    """What other systems use: API tokens with scopes, outgoing webhooks."""

    name = "integrations"

    def ready(self) -> None:
        from conversations import events

        # The token scheme for drf-spectacular; the delivery task, enqueued by name.
        from integrations import schema, tasks  # noqa: F401
        from integrations.webhooks import queue_event_deliveries

        events.set_sink(queue_event_deliveries)
