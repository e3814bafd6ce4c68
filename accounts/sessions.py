"""Staff sessions: the idle timeout, and ending a staff member's other sessions (a lost laptop,
a shared computer)."""

from __future__ import annotations

import time
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts.audit import record_security_event
from accounts.models import SecurityEvent

LAST_SEEN_SESSION_KEY = "staff_last_seen"


def session_store(session_key: str | None) -> SessionBase:
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key)


def mark_seen(session: SessionBase) -> None:
    session[LAST_SEEN_SESSION_KEY] = int(time.time())


def is_idle(session: SessionBase) -> bool:
    """True once a session went STAFF_SESSION_IDLE_MINUTES without a request (0: never)."""
    limit = settings.STAFF_SESSION_IDLE_MINUTES * 60
    last_seen = session.get(LAST_SEEN_SESSION_KEY)
    return bool(limit and last_seen is not None and time.time() - last_seen > limit)


def has_been_idle(session: SessionBase) -> bool:
    """is_idle(), and if not, this request counts as activity."""
    if is_idle(session):
        return True
    last_seen = session.get(LAST_SEEN_SESSION_KEY)
    # Written at most once a minute, so a page of API calls does not save the session each time.
    if last_seen is None or time.time() - last_seen >= 60:
        mark_seen(session)
    return False


def mark_session_active(session_key: str | None) -> None:
    """A websocket message from the page is activity too (at most one write a minute)."""
    if session_key is None:
        return
    session = session_store(session_key)
    if not has_been_idle(session) and session.modified:
        session.save()


def end_other_sessions(*, user: Any, keep_session_key: str | None) -> int:
    """Delete every live session of `user` but the one given; returns how many ended.

    Their live-inbox sockets close at their next access re-check (LIVE_ACCESS_RECHECK_SECONDS).
    """
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.session_key == keep_session_key:
            continue
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            session.delete()
            ended += 1
    record_security_event(
        action=SecurityEvent.Action.OTHER_SESSIONS_ENDED,
        actor=user,
        target=f"auth.user #{user.pk}",
        detail={"ended": ended},
    )
    return ended
