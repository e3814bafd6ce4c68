"""Provider webhooks: verify, parse, record, answer at once. Slow work happens in Celery."""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter

from csp.decorators import csp_exempt
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.utils.decorators import method_decorator
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from conversations.models import CapturedWebhook, Provider
from conversations.providers import meta, twilio
from conversations.providers.base import FROM_OWN_NUMBER, InvalidPayload, ParsedWebhook
from conversations.services.captures import capture_webhook_request
from conversations.services.inbound import apply_status, receive_webhook
from telemetry import metrics

logger = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_CAPTURED_PATH_CHARS = CapturedWebhook._meta.get_field("path").max_length


@method_decorator(csp_exempt(), name="dispatch")
class WebhookView(APIView):
    """Providers authenticate by signature, not by session: no DRF auth, no CSRF, and no CSP
    header (a page policy means nothing to Meta or Twilio; building it costs every webhook)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    provider = ""
    # Set by a handler when every message of the delivery had been delivered before.
    is_duplicate = False

    def dispatch(self, request, *args, **kwargs):
        if request.method != "POST":
            return super().dispatch(request, *args, **kwargs)
        started = time.perf_counter()
        response = super().dispatch(request, *args, **kwargs)
        outcome = _OUTCOMES.get(response.status_code, "error" if response.status_code >= 500 else "refused")
        if outcome == "accepted" and self.is_duplicate:
            outcome = "duplicate"
        metrics.count_webhook(provider=self.provider, outcome=outcome, seconds=time.perf_counter() - started)
        return response


# How a webhook's answer reads in whatsbot_webhooks_total.
_OUTCOMES = {200: "accepted", 204: "accepted", 400: "malformed", 403: "refused_signature", 413: "too_large"}


def _plain(status: int, text: str = "") -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain")


def _read_body(request: Request, provider: str) -> bytes | None:
    """The raw body, or None when it exceeds WEBHOOK_MAX_BODY_BYTES (Django counts the bytes
    actually read, so a missing or understated Content-Length does not get past it).

    Captured when WEBHOOK_CAPTURE_HOURS is on, before any check: a refused signature is
    exactly the incident one wants to replay."""
    try:
        body = request.body
    except RequestDataTooBig:
        return None
    # Cut to its column: a query string of any length must not turn a capture into a 500.
    path = request.get_full_path()[:_CAPTURED_PATH_CHARS]
    capture_webhook_request(provider=provider, path=path, headers=dict(request.headers), body=body)
    return body


class MetaWebhookView(WebhookView):
    provider = Provider.META

    def get(self, request: Request) -> HttpResponse:
        challenge = meta.verify_handshake(request.query_params)
        if challenge is None:
            logger.warning("Meta verification handshake with a wrong verify token refused.")
            return _plain(403, "verify token mismatch")
        return _plain(200, challenge)

    def post(self, request: Request) -> HttpResponse:
        body = _read_body(request, Provider.META)
        if body is None:
            return _plain(413, f"body over {settings.WEBHOOK_MAX_BODY_BYTES} bytes")
        if not meta.verify_signature(body, request.headers.get("X-Hub-Signature-256")):
            logger.warning("Meta webhook with a missing or bad signature refused.")
            return _plain(403, "bad signature")
        try:
            parsed = meta.parse_webhook(body)
        except InvalidPayload as exc:
            logger.warning("Malformed Meta webhook refused: %s", exc)
            return _plain(400, str(exc))
        accepted = receive_webhook(parsed=parsed)
        self.is_duplicate = bool(parsed.messages) and not accepted
        _note_ignored(parsed, Provider.META)
        if parsed.refused:
            # Still 200: the rest is received, and a retry would refuse the same elements again.
            # The reasons name fields only; bodies and numbers stay out of the log.
            logger.warning(
                "Meta webhook: %d element(s) refused, the rest received: %s",
                len(parsed.refused),
                "; ".join(sorted(set(parsed.refused))),
            )
        return _plain(200, "ok")


def _note_ignored(parsed: ParsedWebhook, provider: str) -> None:
    """One line per delivery for the messages the business sent itself, counted by reason,
    never a number: a warning for its own number (a misrouted number, two bots answering each
    other), information for echoes (expected where the WhatsApp Business app is used too)."""
    if not parsed.ignored:
        return
    counts = sorted(Counter(parsed.ignored).items())
    logger.log(
        logging.WARNING if FROM_OWN_NUMBER in parsed.ignored else logging.INFO,
        "%s webhook: not recorded, never a customer's: %s",
        provider,
        "; ".join(f"{count} {reason}" for reason, count in counts),
    )


def _twilio_request_is_genuine(request: Request) -> bool:
    # Twilio signs the URL it called; behind a proxy or ngrok that is PUBLIC_BASE_URL.
    if settings.PUBLIC_BASE_URL:
        url = settings.PUBLIC_BASE_URL + request.get_full_path()
    else:
        url = request.build_absolute_uri()
    is_genuine = twilio.verify_signature(
        url=url,
        params=request.POST,
        signature=request.headers.get("X-Twilio-Signature"),
        settings_header=request.headers.get("X-Twilio-Webhooks-Signature-Settings"),
    )
    if not is_genuine:
        logger.warning("Twilio webhook with a missing or bad signature refused (checked against %s).", url)
    return is_genuine


class TwilioWebhookView(WebhookView):
    """Size, then form, then signature, then the subclass's `handle` (which parses with the
    twilio module)."""

    provider = Provider.TWILIO
    # Twilio posts forms. DRF's JSON parser would also take a JSON body, and recurse into it.
    parser_classes = [FormParser, MultiPartParser]

    def post(self, request: Request) -> HttpResponse:
        if _read_body(request, Provider.TWILIO) is None:
            return _plain(413, f"body over {settings.WEBHOOK_MAX_BODY_BYTES} bytes")
        try:
            request.POST  # noqa: B018 - parsed here, once, so a body that is no form is a 400
        except (ParseError, UnsupportedMediaType):
            logger.warning("Twilio webhook that is not a form refused.")
            return _plain(400, "not a form")
        if not _twilio_request_is_genuine(request):
            return _plain(403, "bad signature")
        try:
            return self.handle(request)
        except InvalidPayload as exc:
            logger.warning("Malformed Twilio webhook refused: %s", exc)
            return _plain(400, str(exc))

    def handle(self, request: Request) -> HttpResponse:
        raise NotImplementedError


class TwilioInboundView(TwilioWebhookView):
    def handle(self, request: Request) -> HttpResponse:
        if twilio.is_status_callback(request.POST):
            _warn_of_misrouted_status_callbacks()
            return _apply_twilio_status(request)
        parsed = twilio.parse_inbound(request.POST)
        self.is_duplicate = bool(parsed.messages) and not receive_webhook(parsed=parsed)
        _note_ignored(parsed, Provider.TWILIO)
        # The answer comes later through the REST API: an empty TwiML response sends nothing now.
        return HttpResponse(EMPTY_TWIML, content_type="text/xml")


class TwilioStatusView(TwilioWebhookView):
    def handle(self, request: Request) -> HttpResponse:
        return _apply_twilio_status(request)


def _apply_twilio_status(request: Request) -> HttpResponse:
    update = twilio.parse_status(request.POST, client_ref=request.query_params.get("ref", ""))
    if update is not None:
        apply_status(update=update)
    return HttpResponse(status=204)


@functools.cache
def _warn_of_misrouted_status_callbacks() -> None:
    # Once per process: a misconfigured number sends every status there, and one line says it.
    logger.warning(
        "Twilio posted a status callback to the incoming-message webhook (/webhooks/twilio/): applied as a "
        "status. Clear the status callback URL of the number or Messaging Service, or set it to "
        "/webhooks/twilio/status/."
    )
