"""The live inbox page (a static shell; its script loads data from the API and the websocket),
the front page and the favicon."""

from __future__ import annotations

from csp.decorators import csp_replace
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.templatetags.static import static

from accounts.access import staff_permission_required
from conversations.api import viewer_actions
from conversations.models import staff_name


@staff_permission_required("conversations.view_conversation")
@csp_replace({"style-src": ["'self'"], "img-src": ["'self'", "data:", "blob:"], "media-src": ["'self'"]})
def live_inbox(request: HttpRequest) -> HttpResponse:
    """The page, with what its viewer may do ({action: allowed}, conversations.api.PAGE_ACTIONS):
    it shows no control the API would refuse; the socket tells it when that changes."""
    context = {"staff_name": staff_name(request.user), "actions": viewer_actions(request.user)}
    return render(request, "live/inbox.html", context)


def home(request: HttpRequest) -> HttpResponse:
    """Staff go to work (the live inbox, or the admin for a role without it); anyone else sees
    what this server is."""
    user = request.user
    if user.is_authenticated and user.is_active and user.is_staff:
        return redirect("live-inbox" if user.has_perm("conversations.view_conversation") else "admin:index")
    return render(request, "home.html")


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    # Browsers ask for /favicon.ico whatever the pages say.
    return HttpResponseRedirect(static("favicon.svg"))
