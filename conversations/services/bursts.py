"""Bursts: several quick customer messages get one reply, written by the task of the newest.

The reply task of each message runs BURST_WINDOW_SECONDS after it arrived (the enqueue
countdown). A message with a newer one behind it leaves the answer to the newer one's task,
whose context holds them all; a reply generated while a newer message arrived is discarded
(its tokens recorded). BURST_MAX_WAIT_SECONDS caps the wait: once the burst's first unanswered
message is that old, the message at hand is answered, so a steady stream still gets replies.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from conversations.ai import ModelReply
from conversations.models import Message, ModelUsage
from conversations.selectors.prompt import get_first_unanswered_message_time, has_newer_customer_message
from conversations.services.usage import record_model_usage

logger = logging.getLogger(__name__)


def is_superseded(*, inbound: Message) -> bool:
    """True when a newer customer message will be answered instead, within the maximum wait."""
    if not has_newer_customer_message(message=inbound):
        return False
    first = get_first_unanswered_message_time(conversation_id=inbound.conversation_id)
    waited = timezone.now() - first if first else timedelta(0)
    return waited < timedelta(seconds=settings.BURST_MAX_WAIT_SECONDS)


def discard_reply(*, inbound: Message, answer: ModelReply) -> None:
    """Drop a reply overtaken by a newer customer message, keeping what it cost."""
    record_model_usage(message=inbound, purpose=ModelUsage.Purpose.DISCARDED_REPLY, answer=answer)
    logger.info("Reply to message %s discarded: a newer customer message arrived meanwhile.", inbound.pk)
