"""The optional copy of the knowledge base in an OpenAI vector store (KNOWLEDGE_VECTOR_STORE_ID).

Each active article is one Markdown file in the store, replaced when the article changes and
deleted when it is deactivated or deleted; the model reaches them through the Responses API's
`file_search` tool (conversations/ai.py). Besides conversations/ai.py this is the only module
that imports `openai`: the store is the knowledge base's, the model's calls are the
conversation's. Articles hold no personal data, so erasure and retention never come here.
Like conversations/ai.py it imports the SDK where it calls it: importing it costs about 0.5 s,
which every process loading the app would pay otherwise.
https://platform.openai.com/docs/api-reference/vector-stores-files
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from knowledge.models import Article

if TYPE_CHECKING:
    import openai

logger = logging.getLogger(__name__)


class VectorStoreUnavailable(Exception):
    def __init__(self, reason: str, *, is_transient: bool) -> None:
        super().__init__(reason)
        self.is_transient = is_transient


def sync_article(*, article_id: int) -> str:
    """Make the store hold the article as it is now; returns its file id ('' when it has none)."""
    article = Article.objects.filter(pk=article_id).first()
    if article is None:
        return ""
    file_id = ""
    if article.is_active:
        content = f"# {article.title}\n\n{article.body}\n".encode()
        with _errors():
            client = _client()
            file_id = client.files.create(
                file=(f"{article.slug}.md", content, "text/markdown"), purpose="assistants"
            ).id
            client.vector_stores.files.create(
                settings.KNOWLEDGE_VECTOR_STORE_ID,
                file_id=file_id,
                attributes={"article_id": article.pk, "slug": article.slug, "language": article.language},
            )
    with transaction.atomic():
        current = Article.objects.select_for_update().filter(pk=article_id).first()
        # Changed (or gone) since it was read: the sync enqueued by that change carries the newer text.
        is_stale = current is None or current.indexed_at != article.indexed_at
        replaced = "" if current is None or is_stale else current.openai_file_id
        if not is_stale:
            Article.objects.filter(pk=article_id).update(openai_file_id=file_id, vector_store_error="")
    for old in {file_id if is_stale else replaced} - {""}:
        remove_file(file_id=old)
    return file_id


def remove_file(*, file_id: str) -> None:
    """Take a file out of the store and delete it; a file already gone is fine."""
    import openai

    with _errors():
        client = _client()
        try:
            client.vector_stores.files.delete(file_id, vector_store_id=settings.KNOWLEDGE_VECTOR_STORE_ID)
        except openai.NotFoundError:
            pass
        try:
            client.files.delete(file_id)
        except openai.NotFoundError:
            pass


def record_failure(*, article_id: int, reason: str) -> None:
    Article.objects.filter(pk=article_id).update(vector_store_error=reason[:255])


@contextmanager
def _errors() -> Iterator[None]:
    import openai

    try:
        yield
    except openai.APIStatusError as exc:
        is_transient = exc.status_code in (408, 409, 429) or exc.status_code >= 500
        raise VectorStoreUnavailable(
            f"HTTP {exc.status_code} {exc.code or ''}".strip(), is_transient=is_transient
        ) from exc
    except openai.APIConnectionError as exc:
        raise VectorStoreUnavailable(type(exc).__name__, is_transient=True) from exc


def _client() -> openai.OpenAI:
    if not settings.OPENAI_API_KEY:
        raise VectorStoreUnavailable("OPENAI_API_KEY is unset", is_transient=False)
    return _cached_client(settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL, settings.OPENAI_TIMEOUT_SECONDS)


@functools.cache
def _cached_client(api_key: str, base_url: str | None, timeout: float) -> openai.OpenAI:
    import openai

    # max_retries=0: the Celery task retries, with backoff.
    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)
