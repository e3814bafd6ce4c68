from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning, register


@register()
def check_configuration(app_configs, **kwargs) -> list[Warning]:
    warnings = []
    if not settings.OPENAI_API_KEY:
        warnings.append(
            Warning(
                "OPENAI_API_KEY is not set: the offline responder answers customers, and labels every reply it writes.",
                hint="Set OPENAI_API_KEY (and OPENAI_BASE_URL for an OpenAI-compatible server).",
                id="whatsbot.W001",
            )
        )
    if not settings.WHATSAPP_APP_SECRET and not settings.TWILIO_AUTH_TOKEN:
        warnings.append(
            Warning(
                "Neither WHATSAPP_APP_SECRET nor TWILIO_AUTH_TOKEN is set: every webhook is refused.",
                hint="Configure a Meta app or a Twilio account (see README.md).",
                id="whatsbot.W002",
            )
        )
    return warnings
