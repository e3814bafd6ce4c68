"""The knowledge base: articles staff write or import, and the passages the bot searches.

It holds no personal data (the business's own pages: shipping, returns, hours…): GDPR export,
erasure and retention never touch it, nor its copy in an OpenAI vector store.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models

from knowledge.text import LANGUAGE_CHOICES

NO_PERSONAL_DATA = (
    "The knowledge base holds no personal data, so GDPR erasure and retention never touch it "
    "(nor its copy in the OpenAI vector store). Never paste a customer's details into an article."
)


def default_language() -> str:
    return settings.KNOWLEDGE_DEFAULT_LANGUAGE


class Tag(models.Model):
    name = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Article(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(
        max_length=100, unique=True, help_text="A stable name for imports and evaluation sets, e.g. shipping-en."
    )
    body = models.TextField(
        help_text="Markdown. Each ## section becomes a passage the bot can quote, so give every answer its heading."
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="articles")
    language = models.CharField(max_length=8, choices=LANGUAGE_CHOICES, default=default_language)
    is_active = models.BooleanField(
        "active", default=True, help_text="Only active articles are searched; deactivating keeps the text."
    )
    url = models.URLField(
        blank=True,
        help_text="The public page of this article; customers see it only when KNOWLEDGE_SOURCE_LINKS is on.",
    )
    source = models.CharField(max_length=500, blank=True, help_text="The file it was imported from.")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    indexed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Its copy in the OpenAI vector store (KNOWLEDGE_VECTOR_STORE_ID), replaced on every change.
    openai_file_id = models.CharField(max_length=100, blank=True, editable=False)
    vector_store_error = models.CharField(max_length=255, blank=True, editable=False)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """A passage of an active article, as searched. Rebuilt from the article on every save
    (services.index_article), so its id changes with each edit."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    heading = models.CharField(max_length=300, blank=True)
    text = models.TextField()
    language = models.CharField(max_length=8)
    # Distinct search terms (knowledge.text) of the title, heading and text, space-separated:
    # the same on every database, so the final score is too (selectors).
    terms = models.TextField()
    heading_terms = models.TextField(blank=True)
    # PostgreSQL only: the weighted tsvector in the article language's configuration, GIN-indexed
    # (migration 0001). SQLite searches the FTS5 table knowledge_chunk_fts instead.
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        ordering = ["article", "position"]
        constraints = [models.UniqueConstraint(fields=["article", "position"], name="unique_chunk_position")]
        # No index on language: a search must reach passages through the full-text index, the
        # language only filters what it finds (an index on it tempts PostgreSQL's planner away).

    def __str__(self) -> str:
        return f"{self.article.title} > {self.heading}" if self.heading else self.article.title

    @property
    def label(self) -> str:
        """How the model and the staff see it: K plus its id."""
        return f"K{self.pk}"


class TermCount(models.Model):
    """How many searchable articles of a language use a term; the empty term counts the articles.

    Kept in step by services.index_article: the inverse document frequency that weighs the
    terms of a question, read in one query and identical on SQLite and PostgreSQL.
    """

    language = models.CharField(max_length=8)
    term = models.CharField(max_length=64, blank=True)
    article_count = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["language", "term"], name="unique_term_count")]

    def __str__(self) -> str:
        return f"{self.language}:{self.term} ({self.article_count})"


def import_path(upload: KnowledgeImport, filename: str) -> str:
    # A folder of its own keeps the file's name, which becomes the article's title when it has none.
    return f"knowledge-imports/{uuid.uuid4().hex}/{filename}"


class KnowledgeImport(models.Model):
    """A file uploaded in the admin; a large one is read and indexed by a Celery task."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        READING = "reading", "Reading"
        INDEXING = "indexing", "Indexing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    file = models.FileField(upload_to=import_path, help_text="Markdown, plain text, PDF or HTML.")
    language = models.CharField(max_length=8, choices=LANGUAGE_CHOICES, default=default_language)
    tags = models.ManyToManyField(Tag, blank=True, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, editable=False)
    # Progress while reading (pages of a PDF; 1 for other files), then the passages indexed.
    pages_done = models.PositiveIntegerField(default=0, editable=False)
    pages_total = models.PositiveIntegerField(default=0, editable=False)
    passages = models.PositiveIntegerField(default=0, editable=False)
    article = models.ForeignKey(Article, null=True, blank=True, on_delete=models.SET_NULL, editable=False)
    error = models.CharField(max_length=500, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return (self.file.name or "").rsplit("/", 1)[-1]
