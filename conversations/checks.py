from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register
from django.db import DatabaseError


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


@register()
def check_recovery(app_configs, **kwargs) -> list[Warning]:
    warnings = []
    # connect timeout (3.05 s) + read timeout, and a margin for the answer to be recorded
    if settings.UNKNOWN_LOOKUP_AFTER_SECONDS < settings.PROVIDER_TIMEOUT_SECONDS + 5:
        warnings.append(
            Warning(
                "UNKNOWN_LOOKUP_AFTER_SECONDS is shorter than a provider call may last: an unknown send could be "
                "looked up (and re-sent) while its call is still waiting for an answer.",
                hint="Keep UNKNOWN_LOOKUP_AFTER_SECONDS at least PROVIDER_TIMEOUT_SECONDS + 5.",
                id="whatsbot.W003",
            )
        )
    if settings.WORKER_HEARTBEAT_STALE_SECONDS < 2 * settings.WORKER_HEARTBEAT_SECONDS:
        warnings.append(
            Warning(
                "WORKER_HEARTBEAT_STALE_SECONDS is under two heartbeats: one late heartbeat makes a live worker's "
                "claims look orphaned (its replies are then worked on twice).",
                hint="Keep WORKER_HEARTBEAT_STALE_SECONDS at least twice WORKER_HEARTBEAT_SECONDS (default: 3 times).",
                id="whatsbot.W004",
            )
        )
    longest_wait = settings.RETRY_BACKOFF_MAX_SECONDS + settings.OPENAI_TIMEOUT_SECONDS
    if settings.BROKER_VISIBILITY_TIMEOUT_SECONDS <= longest_wait:
        warnings.append(
            Warning(
                "BROKER_VISIBILITY_TIMEOUT_SECONDS does not outlast a retry's wait plus a model call: Redis hands "
                "waiting retries to other workers as duplicates.",
                hint="Set it above RETRY_BACKOFF_MAX_SECONDS + OPENAI_TIMEOUT_SECONDS (default 900).",
                id="whatsbot.W005",
            )
        )
    return warnings


@register(Tags.database)
def check_quarantine(app_configs, databases=None, **kwargs) -> list[Warning]:
    """Run by `migrate` (every deploy) and `check --database default`."""
    from conversations.models import ProcessedMessage

    if not databases:
        return []
    try:
        count = ProcessedMessage.objects.filter(quarantined_at__isnull=False, pending__isnull=False).count()
    except DatabaseError:  # not migrated yet
        return []
    if not count:
        return []
    return [
        Warning(
            f"{count} accepted deliveries could not be recorded and are quarantined.",
            hint="Admin → Processed messages → Recording: Quarantined; retry them after a fix, or drop them.",
            id="whatsbot.W006",
        )
    ]
