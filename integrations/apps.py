from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    """What other systems use: API tokens with scopes, outgoing webhooks."""

    name = "integrations"

    def ready(self) -> None:
        from conversations import events
        from integrations import schema  # noqa: F401 -- registers the token scheme with drf-spectacular
        from integrations.webhooks import queue_event_deliveries

        events.set_sink(queue_event_deliveries)
