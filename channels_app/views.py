"""The live inbox page: a static shell; its script loads data from the API and the websocket."""

from __future__ import annotations

from csp.decorators import csp_replace
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import staff_permission_required
from conversations.models import staff_name


@staff_permission_required("conversations.view_conversation")
@csp_replace({"style-src": ["'self'"]})
def live_inbox(request: HttpRequest) -> HttpResponse:
    return render(request, "live/inbox.html", {"staff_name": staff_name(request.user)})
