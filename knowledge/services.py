"""Writes of the knowledge base: index an article, delete it, import files, load the demo shop.

Every change to what is searchable goes through index_article or delete_article: they keep the
passages, the full-text index (FTS5 on SQLite, the tsvector on PostgreSQL) and the term counts
in one transaction, and ask for the OpenAI vector store copy to follow once it commits.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.postgres.search import SearchVector
from django.db import connection, transaction
from django.db.models import F, QuerySet, Value
from django.db.models.expressions import CombinedExpression
from django.utils import timezone
from django.utils.text import slugify
from kombu.exceptions import OperationalError

from knowledge.chunking import split_into_passages
from knowledge.models import Article, Chunk, KnowledgeImport, Tag, TermCount
from knowledge.parsers import UnsupportedFile, parse_document
from knowledge.text import analyze, fold, search_config

logger = logging.getLogger(__name__)

SYNC_VECTOR_STORE = "knowledge.tasks.sync_article_with_vector_store"
REMOVE_FROM_VECTOR_STORE = "knowledge.tasks.remove_file_from_vector_store"
DEMO_DIR = Path(__file__).parent / "demo"
DEMO_SOURCE_PREFIX = "demo:"
_BATCH = 200

Progress = Callable[[int, int], None]  # (done, in all)


def index_article(*, article_id: int) -> int:
    """Rebuild the passages of one article from its body (none when it is inactive); returns
    how many it has now."""
    with transaction.atomic():
        # One indexer per article at a time: two saves in quick succession index in turn.
        article = Article.objects.select_for_update().get(pk=article_id)
        _drop_chunks(Chunk.objects.filter(article=article))
        passages = split_into_passages(article.body) if article.is_active else []
        chunks = [
            Chunk(
                article=article,
                position=position,
                heading=passage.heading[:300],
                text=passage.text,
                language=article.language,
                terms=" ".join(
                    sorted(set(analyze(f"{article.title} {passage.heading} {passage.text}", language=article.language)))
                ),
                heading_terms=" ".join(
                    sorted(set(analyze(f"{article.title} {passage.heading}", language=article.language)))
                ),
                search_vector=_search_vector(article, passage.heading, passage.text),
            )
            for position, passage in enumerate(passages)
        ]
        for start in range(0, len(chunks), _BATCH):
            _index_full_text(article, Chunk.objects.bulk_create(chunks[start : start + _BATCH]))
        _count_terms(chunks, sign=+1)
        Article.objects.filter(pk=article.pk).update(indexed_at=timezone.now())
        if settings.KNOWLEDGE_VECTOR_STORE_ID:
            _enqueue_after_commit(SYNC_VECTOR_STORE, article.pk)
    return len(chunks)


def delete_article(*, article_id: int) -> None:
    """Delete an article, its passages and (once committed) its vector store copy."""
    with transaction.atomic():
        article = Article.objects.select_for_update().filter(pk=article_id).first()
        if article is None:
            return
        _drop_chunks(Chunk.objects.filter(article=article))
        article.delete()
        if article.openai_file_id:
            _enqueue_after_commit(REMOVE_FROM_VECTOR_STORE, article.openai_file_id)


def set_articles_active(*, article_ids: Iterable[int], is_active: bool, user: User | None = None) -> int:
    """Activate or deactivate articles, re-indexing each; returns how many changed."""
    changed = list(
        Article.objects.filter(pk__in=list(article_ids)).exclude(is_active=is_active).values_list("pk", flat=True)
    )
    for article_id in changed:
        Article.objects.filter(pk=article_id).update(is_active=is_active, updated_by=user, updated_at=timezone.now())
        index_article(article_id=article_id)
    return len(changed)


def import_document(
    *,
    name: str,
    data: bytes,
    language: str | None = None,
    tags: Sequence[str] = (),
    source: str = "",
    user: User | None = None,
    progress: Progress | None = None,
) -> Article:
    """Create or update the article of one file and index it. The same source (or the slug of
    a front matter) updates its article; raises UnsupportedFile."""
    document = parse_document(name=name, data=data, progress=progress)
    meta = document.metadata
    source = source or name
    slug = slugify(str(meta.get("slug") or "")) or None
    article = (
        Article.objects.filter(slug=slug).first() if slug else Article.objects.filter(source=source).first()
    ) or Article(slug=slug or _free_slug(document.title))
    article.title = document.title[:200]
    article.body = document.body
    article.language = str(meta.get("language") or language or article.language or settings.KNOWLEDGE_DEFAULT_LANGUAGE)
    article.url = str(meta.get("url") or article.url)
    article.source = source[:500]
    article.updated_by = user
    with transaction.atomic():
        article.save()
        names = [*tags, *(meta.get("tags") or [])]
        if names:
            article.tags.add(*[Tag.objects.get_or_create(name=slugify(str(tag)))[0] for tag in names])
        index_article(article_id=article.pk)
    return article


def run_import(*, import_id: int) -> None:
    """Read and index one file uploaded in the admin, recording its progress on the import
    (each update commits on its own, so the admin sees it while the task runs)."""
    started = KnowledgeImport.objects.filter(
        pk=import_id, status__in=[KnowledgeImport.Status.PENDING, KnowledgeImport.Status.READING]
    ).update(status=KnowledgeImport.Status.READING, pages_done=0)
    if not started:
        return
    upload = KnowledgeImport.objects.get(pk=import_id)
    progress = KnowledgeImport.objects.filter(pk=import_id)

    def record(done: int, total: int) -> None:
        progress.update(pages_done=done, pages_total=total)
        if done == total:
            progress.update(status=KnowledgeImport.Status.INDEXING)

    try:
        with upload.file.open("rb") as handle:
            data = handle.read()
        article = import_document(
            name=upload.file.name or str(upload),
            data=data,
            language=upload.language,
            tags=list(upload.tags.values_list("name", flat=True)),
            source=f"upload:{upload}",
            user=upload.created_by,
            progress=record,
        )
    except UnsupportedFile as exc:
        progress.update(status=KnowledgeImport.Status.FAILED, error=str(exc)[:500], finished_at=timezone.now())
        return
    progress.update(
        status=KnowledgeImport.Status.DONE,
        article=article,
        pages_done=F("pages_total"),
        passages=article.chunks.count(),
        finished_at=timezone.now(),
    )


def load_demo_knowledge() -> list[Article]:
    """The demo shop's articles (knowledge/demo/, English and Italian), created or refreshed."""
    articles = []
    for path in sorted(DEMO_DIR.glob("*/*.md")):
        articles.append(
            import_document(
                name=path.name, data=path.read_bytes(), source=f"{DEMO_SOURCE_PREFIX}{path.relative_to(DEMO_DIR)}"
            )
        )
    return articles


def remove_demo_knowledge() -> int:
    """Delete the demo shop's articles; returns how many there were."""
    ids = list(Article.objects.filter(source__startswith=DEMO_SOURCE_PREFIX).values_list("pk", flat=True))
    for article_id in ids:
        delete_article(article_id=article_id)
    return len(ids)


def reindex_all(*, progress: Progress | None = None) -> int:
    """Every article indexed again and the term counts recounted from scratch (after a
    restore, or a change of the analysis); returns the number of passages."""
    ids = list(Article.objects.order_by("pk").values_list("pk", flat=True))
    for done, article_id in enumerate(ids, start=1):
        index_article(article_id=article_id)
        if progress:
            progress(done, len(ids))
    with transaction.atomic():
        TermCount.objects.all().delete()
        _count_terms(Chunk.objects.only("article_id", "language", "terms").iterator(), sign=+1)
    return Chunk.objects.count()


def _drop_chunks(chunks: QuerySet[Chunk]) -> None:
    """Delete an article's passages, taking its terms out of the counts (FTS5 rows go by trigger)."""
    old = list(chunks.only("pk", "article_id", "language", "terms"))
    _count_terms(old, sign=-1)
    Chunk.objects.filter(pk__in=[chunk.pk for chunk in old]).delete()


def _count_terms(chunks: Iterable[Chunk], *, sign: int) -> None:
    """Add (or take away) the articles of these passages to the counts: one per article and term."""
    per_article: dict[tuple[int, str], set[str]] = {}
    for chunk in chunks:
        per_article.setdefault((chunk.article_id, chunk.language), {""}).update(chunk.terms.split())
    counts: Counter[tuple[str, str]] = Counter()
    for (_, language), held in per_article.items():
        counts.update((language, term) for term in held)
    if not counts:
        return
    TermCount.objects.bulk_create(
        [TermCount(language=language, term=term) for language, term in counts], ignore_conflicts=True
    )
    # Increments, one UPDATE per (language, count): concurrent indexers of other articles add up.
    groups: dict[tuple[str, int], list[str]] = {}
    for (language, term), count in counts.items():
        groups.setdefault((language, count), []).append(term)
    for (language, count), terms in groups.items():
        for start in range(0, len(terms), 500):
            TermCount.objects.filter(language=language, term__in=terms[start : start + 500]).update(
                article_count=F("article_count") + sign * count
            )


def _index_full_text(article: Article, chunks: list[Chunk]) -> None:
    """SQLite: the FTS5 rows (the PostgreSQL tsvector is written with the chunk, _search_vector)."""
    if connection.vendor != "sqlite":
        return
    rows = [
        (
            chunk.pk,
            " ".join(analyze(f"{article.title} {chunk.heading}", language=chunk.language)),
            " ".join(analyze(chunk.text, language=chunk.language)),
        )
        for chunk in chunks
    ]
    with connection.cursor() as cursor:
        cursor.executemany("INSERT INTO knowledge_chunk_fts (rowid, heading, text) VALUES (%s, %s, %s)", rows)


def _search_vector(article: Article, heading: str, text: str) -> CombinedExpression | None:
    """PostgreSQL: the title and heading (weight A) and the text (B), stemmed in the article
    language's configuration, accents folded first as knowledge.text folds them."""
    if connection.vendor != "postgresql":
        return None
    config = search_config(article.language)
    return SearchVector(Value(fold(f"{article.title} {heading}")), weight="A", config=config) + SearchVector(
        Value(fold(text)), weight="B", config=config
    )


def _free_slug(title: str) -> str:
    base = slugify(title)[:90] or "article"
    slug, n = base, 1
    while Article.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def _enqueue_after_commit(task_name: str, *args: object) -> None:
    transaction.on_commit(partial(_enqueue, task_name, *args))


def _enqueue(task_name: str, *args: object) -> None:
    try:
        current_app.tasks[task_name].apply_async(args=args)
    except (OperationalError, OSError) as exc:
        # The article is saved and searchable here; only its vector store copy lags until the next save.
        logger.warning("Broker unavailable (%s); %s%r not enqueued.", exc, task_name.rsplit(".", 1)[-1], args)
