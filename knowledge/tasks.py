"""Celery tasks of the knowledge base: thin, an id in and one call."""

from __future__ import annotations

from celery import Task, shared_task

from knowledge import vector_store
from knowledge.services import run_import


@shared_task
def import_knowledge_file(import_id: int) -> None:
    run_import(import_id=import_id)


_RETRIES = 5


def _retry_if_transient(task: Task[..., None], exc: vector_store.VectorStoreUnavailable) -> None:
    """Retry the task (30 s, 60 s, 120 s…) while the failure is transient and tries remain;
    return when it is time to give up."""
    if exc.is_transient and task.request.retries < _RETRIES:
        raise task.retry(countdown=30 * 2**task.request.retries) from exc


@shared_task(bind=True, max_retries=_RETRIES)
def sync_article_with_vector_store(self: Task[[int], None], article_id: int) -> None:
    try:
        vector_store.sync_article(article_id=article_id)
    except vector_store.VectorStoreUnavailable as exc:
        _retry_if_transient(self, exc)
        vector_store.record_failure(article_id=article_id, reason=str(exc))


@shared_task(bind=True, max_retries=_RETRIES)
def remove_file_from_vector_store(self: Task[[str], None], file_id: str) -> None:
    try:
        vector_store.remove_file(file_id=file_id)
    except vector_store.VectorStoreUnavailable as exc:
        _retry_if_transient(self, exc)
        raise
