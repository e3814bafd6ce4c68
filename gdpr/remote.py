"""Deleting the copies processors hold, one RemoteDeletion row at a time, in a safe order.

One queue for every origin: an erasure's rows, and the rows of no erasure (retention, orphaned
copies), which run as one group (`erasure_id=None`). Each row moves pending -> deleted |
already_gone | failed through a conditional update, so a task run twice (or beside the beat
sweep) deletes once. Transient refusals (Twilio 20009 while a message is in flight, rate
limits, outages) leave the row pending for the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from conversations import ai, providers
from conversations.dispatch import enqueue
from conversations.errors import RemoteDeletionError
from conversations.models import Attachment, Conversation, Message, MessagePart, Provider
from conversations.providers.simulator import SIMULATOR_NUMBER_ID
from gdpr.models import ErasureRecord, RemoteDeletion

logger = logging.getLogger(__name__)

DELETE_REMOTE_COPIES = "gdpr.tasks.delete_remote_copies"

# OpenAI items before their conversation (deleting a conversation does not delete its items).
POSITIONS: dict[str, int] = {
    RemoteDeletion.Kind.OPENAI_CONVERSATION_ITEM: 100,
    RemoteDeletion.Kind.OPENAI_CONVERSATION: 200,
    RemoteDeletion.Kind.OPENAI_RESPONSE: 300,
    RemoteDeletion.Kind.TWILIO_MESSAGE: 400,
    RemoteDeletion.Kind.META_MEDIA: 500,
}

# Keyed by the stored value (str), as the rows hold it; each says whether the copy still existed.
_DELETERS: dict[str, Callable[[RemoteDeletion], bool]] = {
    RemoteDeletion.Kind.OPENAI_CONVERSATION_ITEM: lambda d: ai.delete_conversation_item(
        conversation_id=d.parent_id, item_id=d.remote_id
    ),
    RemoteDeletion.Kind.OPENAI_CONVERSATION: lambda d: ai.delete_conversation(conversation_id=d.remote_id),
    RemoteDeletion.Kind.OPENAI_RESPONSE: lambda d: ai.delete_stored_response(response_id=d.remote_id),
    # A messaging provider's transport deletes the one kind of copy it keeps (Twilio messages, Meta media).
    RemoteDeletion.Kind.TWILIO_MESSAGE: lambda d: providers.for_provider(d.processor).delete_remote_copy(
        remote_id=d.remote_id
    ),
    RemoteDeletion.Kind.META_MEDIA: lambda d: providers.for_provider(d.processor).delete_remote_copy(
        remote_id=d.remote_id
    ),
}


# Keyed by the stored value: a Kind member and its string are the same key.
PROCESSORS: dict[str, RemoteDeletion.Processor] = {
    RemoteDeletion.Kind.OPENAI_CONVERSATION_ITEM: RemoteDeletion.Processor.OPENAI,
    RemoteDeletion.Kind.OPENAI_CONVERSATION: RemoteDeletion.Processor.OPENAI,
    RemoteDeletion.Kind.OPENAI_RESPONSE: RemoteDeletion.Processor.OPENAI,
    RemoteDeletion.Kind.TWILIO_MESSAGE: RemoteDeletion.Processor.TWILIO,
    RemoteDeletion.Kind.META_MEDIA: RemoteDeletion.Processor.META,
}

RemoteCopy = tuple[str, str]  # (RemoteDeletion.Kind, the processor's id)


def list_remote_copies(
    *, messages: QuerySet[Message], conversations: QuerySet[Conversation] | None = None
) -> list[RemoteCopy]:
    """The copies processors keep of these messages (and conversations), in deletion order (reads only).

    OpenAI: stored responses and server-side conversations (their items are listed when they
    are deleted). Twilio: every message resource, inbound or outbound, one per part of a split
    reply (deleting it deletes its media). Meta: the media objects of inbound files (Meta keeps
    no message store to delete from). Simulated conversations reached no processor.
    """
    copies: set[RemoteCopy] = set()
    if conversations is not None:
        copies |= {
            (RemoteDeletion.Kind.OPENAI_CONVERSATION, conversation_id)
            for conversation_id in conversations.exclude(openai_conversation_id="").values_list(
                "openai_conversation_id", flat=True
            )
        }
    copies |= {
        (RemoteDeletion.Kind.OPENAI_RESPONSE, response_id)
        for response_id in messages.exclude(openai_response_id="").values_list("openai_response_id", flat=True)
    }
    twilio = messages.filter(provider=Provider.TWILIO)
    copies |= {
        (RemoteDeletion.Kind.TWILIO_MESSAGE, sid)
        for sid in twilio.exclude(provider_message_id="").values_list("provider_message_id", flat=True)
        if sid  # NULL until the provider took it
    }
    copies |= {
        (RemoteDeletion.Kind.TWILIO_MESSAGE, sid)
        for sid in MessagePart.objects.filter(message__in=twilio)
        .exclude(provider_message_id="")
        .values_list("provider_message_id", flat=True)
    }
    meta_media = Attachment.objects.filter(message__in=messages.filter(provider=Provider.META)).exclude(
        message__conversation__business_address=SIMULATOR_NUMBER_ID
    )
    copies |= {
        (RemoteDeletion.Kind.META_MEDIA, media_id)
        for media_id in meta_media.exclude(provider_ref="").values_list("provider_ref", flat=True)
    }
    return sorted(copies, key=lambda copy: (POSITIONS[copy[0]], copy[1]))


def record_remote_deletions(*, copies: Iterable[RemoteCopy], origin: str, erasure: ErasureRecord | None = None) -> None:
    """Queue these copies for deletion (a copy queued already, outside an erasure, is queued once)."""
    RemoteDeletion.objects.bulk_create(
        [
            RemoteDeletion(
                erasure=erasure,
                origin=origin,
                processor=PROCESSORS[kind],
                kind=kind,
                remote_id=remote_id,
                position=POSITIONS[kind],
            )
            for kind, remote_id in copies
        ],
        ignore_conflicts=True,
    )


def queue_orphaned_copies(*, copies: list[RemoteCopy], **_signal: object) -> None:
    """Receiver of conversations' `remote_copies_orphaned`: queue the copies no erasure queued
    already (a reply erased during its send) and run the queue once this transaction commits
    (the beat sweep retries what is refused)."""
    queued = set(
        RemoteDeletion.objects.filter(remote_id__in=[remote_id for _, remote_id in copies]).values_list(
            "kind", "remote_id"
        )
    )
    record_remote_deletions(copies=[copy for copy in copies if copy not in queued], origin=RemoteDeletion.Origin.ORPHAN)
    transaction.on_commit(lambda: enqueue(DELETE_REMOTE_COPIES, None))


def run_remote_deletions(*, erasure_id: int | None) -> int:
    """Try every pending remote deletion of an erasure (None: of no erasure) once, in order;
    returns how many stay pending."""
    pending = RemoteDeletion.objects.filter(erasure_id=erasure_id, status=RemoteDeletion.Status.PENDING)
    listed = _list_openai_items(pending.filter(kind=RemoteDeletion.Kind.OPENAI_CONVERSATION), erasure_id)
    for deletion in pending.order_by("position", "id"):
        if deletion.kind == RemoteDeletion.Kind.OPENAI_CONVERSATION and (
            deletion.remote_id not in listed
            or pending.filter(kind=RemoteDeletion.Kind.OPENAI_CONVERSATION_ITEM, parent_id=deletion.remote_id).exists()
        ):
            continue  # its items are not all gone yet: deleting it now would orphan them at OpenAI
        _attempt(deletion)
    left = pending.count()
    if left:
        logger.warning("%s: %s remote deletion(s) still pending; they will be retried.", _queue_name(erasure_id), left)
    return left


def _queue_name(erasure_id: int | None) -> str:
    return f"Erasure {erasure_id}" if erasure_id is not None else "Retention and orphaned copies"


def schedule_remote_deletions(*, erasure_id: int | None) -> None:
    """Enqueue another run later; if the broker is down, the beat sweep picks the rows up."""
    enqueue(DELETE_REMOTE_COPIES, erasure_id, countdown=settings.REMOTE_DELETION_RETRY_SECONDS)


def list_erasures_with_pending_deletions() -> list[int | None]:
    """The erasures with pending remote deletions; None stands for the rows of no erasure."""
    return list(
        RemoteDeletion.objects.filter(status=RemoteDeletion.Status.PENDING)
        .values_list("erasure_id", flat=True)
        .distinct()[:1000]
    )


def _list_openai_items(conversations: QuerySet[RemoteDeletion], erasure_id: int | None) -> set[str]:
    """Add a row per item of each pending OpenAI conversation; the ids whose listing succeeded."""
    listed: set[str] = set()
    for conversation in conversations:
        try:
            item_ids = ai.list_conversation_item_ids(conversation_id=conversation.remote_id)
        except RemoteDeletionError as exc:
            _record_failure(conversation, exc)
            continue
        RemoteDeletion.objects.bulk_create(
            [
                RemoteDeletion(
                    erasure_id=erasure_id,
                    origin=conversation.origin,
                    processor=RemoteDeletion.Processor.OPENAI,
                    kind=RemoteDeletion.Kind.OPENAI_CONVERSATION_ITEM,
                    remote_id=item_id,
                    parent_id=conversation.remote_id,
                    position=POSITIONS[RemoteDeletion.Kind.OPENAI_CONVERSATION_ITEM],
                )
                for item_id in item_ids
            ],
            ignore_conflicts=True,
        )
        listed.add(conversation.remote_id)
    return listed


def _attempt(deletion: RemoteDeletion) -> None:
    try:
        existed = _DELETERS[deletion.kind](deletion)
    except RemoteDeletionError as exc:
        _record_failure(deletion, exc)
        return
    RemoteDeletion.objects.filter(pk=deletion.pk, status=RemoteDeletion.Status.PENDING).update(
        status=RemoteDeletion.Status.DELETED if existed else RemoteDeletion.Status.ALREADY_GONE,
        attempts=F("attempts") + 1,
        last_error="",
        completed_at=timezone.now(),
    )


def _record_failure(deletion: RemoteDeletion, exc: RemoteDeletionError) -> None:
    status = RemoteDeletion.Status.PENDING if exc.is_transient else RemoteDeletion.Status.FAILED
    RemoteDeletion.objects.filter(pk=deletion.pk, status=RemoteDeletion.Status.PENDING).update(
        status=status, attempts=F("attempts") + 1, last_error=str(exc)[:255]
    )
    if exc.is_transient:
        logger.info("%s deletion %s refused for now (%s); will retry.", deletion.get_kind_display(), deletion.pk, exc)
    else:
        logger.error(
            "%s deletion %s failed for good (%s). Fix the cause, then delete it by hand at the processor.",
            deletion.get_kind_display(),
            deletion.pk,
            exc,
        )
