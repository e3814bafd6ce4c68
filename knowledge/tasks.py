"""Celery tasks of the knowledge base: thin, an id in and one call."""

from __future__ import annotations

from celery import Task, shared_task

from knowledge import vector_store
from knowledge.services import run_import


@shared_task
def import_knowledge_file(import_id: int) -> None:
    run_import(import_id=import_id)


_RETRIES = 5


@shared_task(bind=True, max_retries=_RETRIES)
def sync_article_with_vector_store(self: Task[[int], None], article_id: int) -> None:
    try:
        vector_store.sync_article(article_id=article_id)
    except vector_store.VectorStoreUnavailable as exc:
        if exc.is_transient and self.request.retries < _RETRIES:
            raise self.retry(countdown=30 * 2**self.request.retries) from exc
        vector_store.record_failure(article_id=article_id, reason=str(exc))


@shared_task(bind=True, max_retries=_RETRIES)
def remove_file_from_vector_store(self: Task[[str], None], file_id: str) -> None:
    try:
        vector_store.remove_file(file_id=file_id)
    except vector_store.VectorStoreUnavailable as exc:
        if exc.is_transient and self.request.retries < _RETRIES:
            raise self.retry(countdown=30 * 2**self.request.retries) from exc
        raise
