"""Reads for staff access to message media."""

from __future__ import annotations

import uuid

from conversations.models import Attachment


def get_stored_attachment(*, message_uid: uuid.UUID, attachment_id: int) -> Attachment | None:
    """A downloaded attachment, addressed by its message's random uid (ids alone are guessable)."""
    return (
        Attachment.objects.select_related("message")
        .filter(pk=attachment_id, message__uid=message_uid, status=Attachment.Status.STORED)
        .exclude(file="")
        .first()
    )
