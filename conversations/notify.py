"""Tell the staff live inbox that something changed: the one place services notify from.

A notification costs nothing while no live-inbox page is open: the pages' sockets keep a
presence mark in the cache (`mark_watched`, channels_app/consumers.py) and services look at
it first (`is_watched`). While a page is open, each notification is handed, once its
transaction commits, to the live inbox's publisher in this same process (channels_app/live.py
registers it at start-up, so this module imports nothing above it): it builds the event's JSON
and hands it to a sender thread, no broker and no task in between. An event that cannot be
built or sent is logged and dropped: pages catch up through the API when they reconnect.

The presence answer is remembered for PRESENCE_CHECK_SECONDS per process; a socket that marks
the inbox watched waits as long before it is accepted (and so before the page reads the state
it starts from), so a change a process skipped while it still believed nobody was watching is
in what the page reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial

from django.core.cache import cache
from django.db import transaction

from conversations.models import Message

logger = logging.getLogger(__name__)

PRESENCE_KEY = "live-inbox:watched"
# A socket refreshes the mark every PRESENCE_REFRESH_SECONDS; a mark left by a server that
# stopped without closing its sockets lapses after PRESENCE_TTL_SECONDS.
PRESENCE_TTL_SECONDS = 30
PRESENCE_REFRESH_SECONDS = 10
PRESENCE_CHECK_SECONDS = 0.5

# ("message", [message ids]) · ("status", message id or None, provider, provider's id) ·
# ("conversations", [conversation ids]) · ("contact", contact id) · ("removed", [conversation ids])
Event = tuple
Publisher = Callable[[Event], None]

_publisher: Publisher | None = None


class _Presence:
    checked_at = -float("inf")
    watched = False
    refreshing = threading.Lock()


_presence = _Presence()


def set_publisher(publisher: Publisher | None) -> None:
    """Called once by the live inbox app (channels_app/apps.py) when Django starts."""
    global _publisher
    _publisher = publisher


def mark_watched() -> None:
    """A live-inbox page is open (called by its socket on connect and then periodically)."""
    cache.set(PRESENCE_KEY, True, timeout=PRESENCE_TTL_SECONDS)
    _presence.checked_at = -float("inf")


def is_watched() -> bool:
    """True while a live-inbox page may be open, as of at most PRESENCE_CHECK_SECONDS ago."""
    if time.monotonic() - _presence.checked_at < PRESENCE_CHECK_SECONDS:
        return _presence.watched
    # One caller asks the cache; the others (a worker's greenlets, all due at once) wait for its
    # answer instead of each opening a cache connection of its own.
    with _presence.refreshing:
        now = time.monotonic()
        if now - _presence.checked_at < PRESENCE_CHECK_SECONDS:
            return _presence.watched
        try:
            watched = bool(cache.get(PRESENCE_KEY))
        except Exception:  # the cache is down: better an event nobody reads than a page left behind
            logger.warning("Live inbox presence unknown (cache unavailable); publishing.", exc_info=True)
            watched = True
        _presence.checked_at, _presence.watched = now, watched
        return watched


def messages_created(messages: Iterable[Message]) -> None:
    """Messages were stored (customer, bot, staff or internal notes)."""
    _notify("message", [message.pk for message in messages])


def message_created(message: Message) -> None:
    """A message was stored (customer, bot, staff or internal note)."""
    _notify("message", [message.pk])


def message_status_changed(*, message_id: int | None = None, provider: str = "", provider_message_id: str = "") -> None:
    """An outbound message's delivery status moved (by id, or by the provider's id)."""
    _notify("status", message_id, provider, provider_message_id)


def conversation_changed(*, conversation_id: int) -> None:
    """Mode, holder, needs-human flag or read marker of a conversation changed."""
    _notify("conversations", [conversation_id])


def contact_changed(*, contact_id: int) -> None:
    """A contact's details or identities changed (staff edit, extraction, merge, split)."""
    _notify("contact", contact_id)


def conversations_removed(*, conversation_ids: list[int]) -> None:
    """Conversations were deleted (erased): open inboxes drop them without a reload."""
    if conversation_ids:
        _notify("removed", sorted(conversation_ids))


def _notify(*event: object) -> None:
    if _publisher is None or not is_watched():
        return
    transaction.on_commit(partial(_publish, _publisher, event))


def _publish(publisher: Publisher, event: Event) -> None:
    try:
        publisher(event)
    except Exception:  # a notification must never undo or fail the state change it reports
        logger.warning("Live inbox notification %s failed; pages catch up on reconnect.", event[0], exc_info=True)
