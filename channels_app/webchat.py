"""The embeddable web chat widget: anonymous visitors keyed to a signed cookie."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.clickjacking import xframe_options_exempt

from conversations.selectors.webchat import is_webchat_conversation_of

VISITOR_COOKIE = "whatsbot_visitor"
_SALT = "whatsbot.webchat"
_ONE_YEAR = 60 * 60 * 24 * 365


def _signer() -> signing.TimestampSigner:
    # The same signer for the page and the websocket, which only sees raw cookie values.
    return signing.TimestampSigner(salt=_SALT)


def read_visitor_id(raw_cookie: str | None) -> str | None:
    """The visitor id in a cookie value, or None when missing, expired or forged."""
    if not raw_cookie:
        return None
    try:
        return _signer().unsign(raw_cookie, max_age=_ONE_YEAR)
    except signing.BadSignature:
        return None


@xframe_options_exempt
def widget_page(request: HttpRequest) -> HttpResponse:
    """The chat page; embedded by embed.js on the business's site, or opened directly."""
    visitor_id = read_visitor_id(request.COOKIES.get(VISITOR_COOKIE))
    conversation_id = request.GET.get("conversation")
    if conversation_id is not None:
        # A link to a conversation opens only for the visitor it belongs to.
        if not (visitor_id and conversation_id.isdigit()) or not is_webchat_conversation_of(
            visitor_id=visitor_id, conversation_id=int(conversation_id)
        ):
            raise Http404("No such conversation.")
    response = render(request, "chat/widget.html", {"conversation_id": conversation_id or ""})
    ancestors = " ".join(["'self'", *settings.WEBCHAT_ALLOWED_ORIGINS])
    response["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
    if visitor_id is None:
        # Embedded on another site the cookie is third-party: it must be SameSite=None; Secure.
        cross_site = bool(settings.WEBCHAT_ALLOWED_ORIGINS) and request.is_secure()
        response.set_cookie(
            VISITOR_COOKIE,
            _signer().sign(secrets.token_urlsafe(18)),
            max_age=_ONE_YEAR,
            httponly=True,
            secure=request.is_secure(),
            samesite="None" if cross_site else "Lax",
        )
    return response
