"""The knowledge base in the admin: write, preview, deactivate, import files, try a question.

Every save re-indexes its article at once; an uploaded file larger than
KNOWLEDGE_BACKGROUND_IMPORT_BYTES is read and indexed by a Celery task whose progress shows in
the list of imports.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib import admin, messages
from django.db import models, transaction
from django.db.models import Case, Count, FloatField, Value, When
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from knowledge import tasks
from knowledge.models import NO_PERSONAL_DATA, Article, Chunk, KnowledgeImport, Tag
from knowledge.selectors import search_knowledge
from knowledge.services import delete_article, index_article, run_import, set_articles_active


@functools.cache
def _markdown():
    """Raw HTML in an article is shown as text, never rendered; links are checked by markdown-it
    (loaded for a preview, not with the admin by every process)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False})


class _NoPersonalDataNotice:
    def changelist_view(self, request: HttpRequest, extra_context=None):
        return super().changelist_view(request, {"subtitle": NO_PERSONAL_DATA, **(extra_context or {})})


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Article)
class ArticleAdmin(_NoPersonalDataNotice, admin.ModelAdmin):
    list_display = ["title", "language", "tag_list", "is_active", "passages", "updated_by", "updated_at", "source"]
    list_filter = ["language", "is_active", "tags"]
    search_fields = ["title", "slug", "body"]
    prepopulated_fields = {"slug": ["title"]}
    filter_horizontal = ["tags"]
    list_select_related = ["updated_by"]
    actions = ["activate", "deactivate", "reindex"]
    readonly_fields = ["preview", "passage_list", "source", "updated_by", "updated_at", "indexed_at", "vector_store"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = [
        (
            None,
            {
                "fields": ["title", "slug", "language", "tags", "is_active", "url", "body"],
                "description": NO_PERSONAL_DATA,
            },
        ),
        ("Preview (as saved)", {"fields": ["preview", "passage_list"]}),
        ("Record", {"fields": ["source", "updated_by", "updated_at", "indexed_at", "vector_store"]}),
    ]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(passage_count=Count("chunks")).prefetch_related("tags")

    @admin.display(description="Tags")
    def tag_list(self, article: Article) -> str:
        return ", ".join(tag.name for tag in article.tags.all())

    @admin.display(description="Passages", ordering="passage_count")
    def passages(self, article: Article) -> int:
        return article.passage_count

    @admin.display(description="Preview")
    def preview(self, article: Article) -> str:
        if not article.pk:
            return "Save to see the preview."
        return format_html('<div class="knowledge-preview">{}</div>', mark_safe(_markdown().render(article.body)))  # noqa: S308

    @admin.display(description="Passages the bot searches")
    def passage_list(self, article: Article) -> str:
        chunks = article.chunks.order_by("position") if article.pk else []
        if not chunks:
            return "None: the article is inactive or empty." if article.pk else "—"
        rows = format_html_join(
            "",
            "<li><b>K{}</b> {} ({} characters)</li>",
            ((c.pk, c.heading or "(introduction)", len(c.text)) for c in chunks),
        )
        return format_html("<ol>{}</ol>", rows)

    @admin.display(description="OpenAI vector store")
    def vector_store(self, article: Article) -> str:
        if not settings.KNOWLEDGE_VECTOR_STORE_ID:
            return "Not used (KNOWLEDGE_VECTOR_STORE_ID is unset)."
        if article.vector_store_error:
            return f"Not synced: {article.vector_store_error}"
        return article.openai_file_id or "Not in the store (inactive, or being synced)."

    def save_model(self, request: HttpRequest, obj: Article, form, change: bool) -> None:
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        index_article(article_id=form.instance.pk)

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Passages are read-only in the admin, yet go with their article.
        perms_needed.discard(Chunk._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Article) -> None:
        delete_article(article_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for article_id in queryset.values_list("pk", flat=True):
            delete_article(article_id=article_id)

    @admin.action(description="Activate the selected articles", permissions=["change"])
    def activate(self, request: HttpRequest, queryset) -> None:
        changed = set_articles_active(
            article_ids=queryset.values_list("pk", flat=True), is_active=True, user=request.user
        )
        self.message_user(request, f"{changed} article(s) activated and indexed.", messages.SUCCESS)

    @admin.action(description="Deactivate the selected articles (no longer searched)", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset) -> None:
        changed = set_articles_active(
            article_ids=queryset.values_list("pk", flat=True), is_active=False, user=request.user
        )
        self.message_user(request, f"{changed} article(s) deactivated.", messages.SUCCESS)

    @admin.action(description="Re-index the selected articles", permissions=["change"])
    def reindex(self, request: HttpRequest, queryset) -> None:
        passages = sum(index_article(article_id=article_id) for article_id in queryset.values_list("pk", flat=True))
        self.message_user(request, f"Re-indexed into {passages} passages.", messages.SUCCESS)


@admin.register(Chunk)
class ChunkAdmin(_NoPersonalDataNotice, admin.ModelAdmin):
    """Read-only. The search box asks a question as a customer would: the passages come in the
    order the bot gets them, with their relevance (below KNOWLEDGE_MIN_RELEVANCE: not given)."""

    list_display = ["label", "article", "heading", "language", "relevance", "excerpt"]
    list_filter = ["language"]
    list_select_related = ["article"]
    search_fields = ["text"]  # replaced by search_knowledge, see get_search_results
    search_help_text = "Ask a question as a customer would: passages in the order the bot gets them."
    fields = ["article", "position", "heading", "language", "text", "terms"]
    readonly_fields = fields

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        if not search_term.strip():
            return queryset.annotate(score=Value(None, output_field=FloatField())), False
        hits = search_knowledge(search_term, limit=20, min_relevance=0.0)
        order = Case(*[When(pk=hit.chunk_id, then=Value(rank)) for rank, hit in enumerate(hits)], default=Value(None))
        score = Case(
            *[When(pk=hit.chunk_id, then=Value(hit.relevance)) for hit in hits],
            output_field=FloatField(),
            default=Value(None),
        )
        matching = queryset.filter(pk__in=[hit.chunk_id for hit in hits]).annotate(rank=order, score=score)
        return matching.order_by("rank"), False

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(score=Value(None, output_field=FloatField()))

    @admin.display(description="Id")
    def label(self, chunk: Chunk) -> str:
        return chunk.label

    @admin.display(description="Relevance")
    def relevance(self, chunk: Chunk) -> str:
        if chunk.score is None:
            return ""
        given = "" if chunk.score >= settings.KNOWLEDGE_MIN_RELEVANCE else " (not given)"
        return f"{chunk.score:.2f}{given}"

    @admin.display(description="Text")
    def excerpt(self, chunk: Chunk) -> str:
        return chunk.text if len(chunk.text) <= 160 else chunk.text[:157] + "…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(KnowledgeImport)
class KnowledgeImportAdmin(_NoPersonalDataNotice, admin.ModelAdmin):
    list_display = ["__str__", "language", "status", "progress", "article", "created_by", "created_at"]
    list_filter = ["status", "language"]
    list_select_related = ["article", "created_by"]
    filter_horizontal = ["tags"]
    fields = ["file", "language", "tags"]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return ["file", "language", "tags", "status", "progress", "article", "error"] if obj else []

    def get_fields(self, request: HttpRequest, obj=None):
        return self.get_readonly_fields(request, obj) if obj else self.fields

    @admin.display(description="Progress")
    def progress(self, upload: KnowledgeImport) -> str:
        status = KnowledgeImport.Status
        if upload.status == status.READING and upload.pages_total:
            return f"Reading page {upload.pages_done} of {upload.pages_total}"
        if upload.status == status.DONE:
            return f"{upload.passages} passages"
        if upload.status == status.FAILED:
            return upload.error
        return upload.get_status_display()

    def save_model(self, request: HttpRequest, obj: KnowledgeImport, form, change: bool) -> None:
        obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        upload = form.instance
        if change:
            return
        if upload.file.size > settings.KNOWLEDGE_BACKGROUND_IMPORT_BYTES:
            transaction.on_commit(lambda: tasks.import_knowledge_file.delay(upload.pk))
            self.message_user(request, "The file is being read and indexed: its progress shows in this list.")
        else:
            run_import(import_id=upload.pk)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # An import is never edited; the list stays for whoever may change imports at all.
        return obj is None and super().has_change_permission(request)
