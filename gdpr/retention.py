"""Retention (GDPR art. 5(1)(e)): delete what is older than its retention period, in batches.

Every batch is its own short transaction over at most PURGE_BATCH_SIZE ids, so memory stays
flat and the webhook keeps writing while a large purge runs. Safe to run twice or concurrently:
each batch deletes whatever of its ids still exists.

The processors' copies of what a batch deletes (stored OpenAI responses and conversations,
Twilio messages, Meta media) are queued for deletion in the same transaction, before their ids
are forgotten, and deleted through the erasure's retried queue (gdpr/remote.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from conversations.models import Attachment, Conversation, Message, ProcessedMessage, ToolCall, UsageWindow
from gdpr.files import delete_stored_files
from gdpr.models import RemoteDeletion
from gdpr.remote import list_remote_copies, record_remote_deletions, run_remote_deletions, schedule_remote_deletions
from telemetry import metrics

logger = logging.getLogger(__name__)

# Budget counters (UsageWindow) outlive their period by this much, then go.
USAGE_WINDOW_KEEP = timedelta(days=40)


class Progress(Protocol):
    def update(self, n: int) -> object: ...
    def close(self) -> object: ...


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


ProgressFactory = Callable[[str, int], Progress]


@dataclass
class PurgeSummary:
    dry_run: bool
    message_cutoff: datetime | None  # None: DATA_RETENTION_DAYS unset, messages are kept
    processed_cutoff: datetime
    messages: int = 0
    attachments: int = 0
    files: int = 0
    conversations: int = 0
    processed_ids: int = 0
    tool_calls: int = 0
    usage_windows: int = 0
    remote_copies: int = 0  # queued for deletion at the processors

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def purge_expired(
    *,
    now: datetime | None = None,
    retention_days: int | None = None,
    processed_days: int | None = None,
    dry_run: bool = False,
    batch_size: int | None = None,
    progress: ProgressFactory | None = None,
) -> PurgeSummary:
    """Delete messages and media created before now - DATA_RETENTION_DAYS, conversations left
    empty, and webhook dedup ids older than PROCESSED_MESSAGE_RETENTION_DAYS; the model's tool
    calls go with the messages, budget counters after USAGE_WINDOW_KEEP."""
    now = now or timezone.now()
    retention_days = settings.DATA_RETENTION_DAYS if retention_days is None else retention_days
    processed_days = settings.PROCESSED_MESSAGE_RETENTION_DAYS if processed_days is None else processed_days
    batch_size = batch_size or settings.PURGE_BATCH_SIZE
    progress = progress or (lambda _desc, _total: _NoProgress())
    summary = PurgeSummary(
        dry_run=dry_run,
        message_cutoff=now - timedelta(days=retention_days) if retention_days else None,
        processed_cutoff=now - timedelta(days=processed_days),
    )
    if summary.message_cutoff:
        cutoff = summary.message_cutoff
        expired = Message.objects.filter(created_at__lt=cutoff)
        # What is empty once the expired messages are gone (a dry run deletes none, so it must
        # not count only the conversations empty already).
        kept = Message.objects.filter(conversation=OuterRef("pk"), created_at__gte=cutoff)
        emptied = Conversation.objects.filter(updated_at__lt=cutoff).exclude(Exists(kept))
        # The model's function calls: those of expired messages and emptied conversations (they
        # would go with them) and any older than the cutoff, first, so a dry run counts the same.
        tool_calls = ToolCall.objects.filter(
            Q(created_at__lt=cutoff) | Q(message__in=expired) | Q(conversation__in=emptied)
        )
        summary.tool_calls = _delete_in_batches(tool_calls, batch_size, dry_run, progress)
        if dry_run:
            summary.messages = expired.count()
            attachments = Attachment.objects.filter(message__created_at__lt=cutoff)
            summary.attachments = attachments.count()
            summary.files = attachments.exclude(file="").count()
            summary.conversations = emptied.count()
            summary.remote_copies = len(list_remote_copies(messages=expired, conversations=emptied))
        else:
            _purge_messages(expired, summary, batch_size, progress("messages", expired.count()))
            # Only conversations with nothing left: a message that arrived meanwhile keeps its own.
            empty = emptied.filter(messages__isnull=True)
            summary.conversations = _purge_conversations(empty, summary, batch_size, progress)
    processed = ProcessedMessage.objects.filter(received_at__lt=summary.processed_cutoff)
    summary.processed_ids = _delete_in_batches(processed, batch_size, dry_run, progress)
    # The budgets' per-contact counters of periods long over (the longest period is a month).
    stale = UsageWindow.objects.filter(starts_at__lt=now - USAGE_WINDOW_KEEP)
    summary.usage_windows = _delete_in_batches(stale, batch_size, dry_run, progress)
    logger.info("Purge %s: %s", "dry run" if dry_run else "done", summary.as_dict())
    if summary.remote_copies and not dry_run and run_remote_deletions(erasure_id=None):
        schedule_remote_deletions(erasure_id=None)
    metrics.count_gdpr_job(job="purge", outcome="dry_run" if dry_run else "done")
    return summary


def _purge_messages(expired: QuerySet[Message], summary: PurgeSummary, batch_size: int, bar: Progress) -> None:
    for ids in _id_batches(expired, batch_size):
        with transaction.atomic():
            batch = Message.objects.filter(pk__in=ids)
            summary.remote_copies += _queue_remote_copies(messages=batch)
            names = list(Attachment.objects.filter(message_id__in=ids).exclude(file="").values_list("file", flat=True))
            _, deleted = batch.only("pk").delete()
            transaction.on_commit(partial(delete_stored_files, names=names))
        summary.messages += deleted.get(Message._meta.label, 0)
        summary.attachments += deleted.get(Attachment._meta.label, 0)
        summary.files += len(names)
        bar.update(len(ids))
    bar.close()


def _purge_conversations(
    empty: QuerySet[Conversation], summary: PurgeSummary, batch_size: int, progress: ProgressFactory
) -> int:
    bar = progress("conversations", empty.count())
    total = 0
    for ids in _id_batches(empty, batch_size):
        with transaction.atomic():
            batch = empty.filter(pk__in=ids)  # still empty: checked again as they go
            summary.remote_copies += _queue_remote_copies(messages=Message.objects.none(), conversations=batch)
            _, deleted = batch.delete()
        total += deleted.get(Conversation._meta.label, 0)
        bar.update(len(ids))
    bar.close()
    return total


def _queue_remote_copies(*, messages: QuerySet[Message], conversations: QuerySet[Conversation] | None = None) -> int:
    copies = list_remote_copies(messages=messages, conversations=conversations)
    record_remote_deletions(copies=copies, origin=RemoteDeletion.Origin.RETENTION)
    return len(copies)


def _delete_in_batches(queryset: QuerySet[Any], batch_size: int, dry_run: bool, progress: ProgressFactory) -> int:
    if dry_run:
        return queryset.count()
    model = queryset.model
    bar = progress(str(model._meta.verbose_name_plural), queryset.count())
    total = 0
    for ids in _id_batches(queryset, batch_size):
        _, deleted = model.objects.filter(pk__in=ids).delete()
        total += deleted.get(model._meta.label, 0)
        bar.update(len(ids))
    bar.close()
    return total


def _id_batches(queryset: QuerySet[Any], batch_size: int) -> Iterator[list[int]]:
    """Ids in ascending batches, each query starting after the last id: rescanning from the start
    would walk over every row already deleted (dead index entries until VACUUM) again and again."""
    last = None
    while True:
        page = queryset.order_by("pk") if last is None else queryset.filter(pk__gt=last).order_by("pk")
        ids = list(page.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return
        yield ids
        last = ids[-1]
