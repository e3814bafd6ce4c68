"""The knowledge app's schema in one migration (squashed: no deployment had migrated the earlier
ones), with the full-text index of the passages, per database."""

import django.contrib.postgres.search
import django.db.models.deletion
import knowledge.models
from django.conf import settings
from django.db import migrations, models


# The full-text index of the passages, per database (knowledge/selectors.py searches it):
# SQLite: an FTS5 table of the terms knowledge.text makes (stemmed in Python for every
# language, so the tokenizer only splits on spaces); the indexing service inserts its rows, a
# trigger deletes them with their passage (also on cascades and test flushes). Django rebuilds
# a SQLite table to alter it, dropping its triggers: a migration that alters knowledge_chunk
# must create this trigger again.
# PostgreSQL: GIN indexes on the weighted tsvector the indexing service computes in the
# article language's configuration, one per language (partial), so that a search in one
# language never reads the postings of another (Italian "ordin" is in thousands of Italian
# passages and in no English one). A language added to knowledge.text needs its index here.
# Without a pending list (fastupdate off): with one, new passages wait in an unsorted list, up to
# 4 MB (~1,600 passages), until a VACUUM merges them, and every search reads the whole list on each
# index scan: ~0.7 ms a scan, half of a search's database time at 10,000 passages
# (bench/knowledge.py). Articles change far less often than customers ask, so each passage goes
# into the index as it is written.
SQLITE_CREATE = [
    "CREATE VIRTUAL TABLE knowledge_chunk_fts USING fts5(heading, text, tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE TRIGGER knowledge_chunk_fts_delete AFTER DELETE ON knowledge_chunk"
    " BEGIN DELETE FROM knowledge_chunk_fts WHERE rowid = old.id; END",
]
SQLITE_DROP = ["DROP TRIGGER IF EXISTS knowledge_chunk_fts_delete", "DROP TABLE IF EXISTS knowledge_chunk_fts"]
LANGUAGES = ["en", "it", "es", "fr", "de", "pt", "nl"]
POSTGRESQL_CREATE = [
    f"CREATE INDEX knowledge_chunk_search_{code}_idx ON knowledge_chunk USING gin (search_vector)"
    f" WITH (fastupdate = off) WHERE language = '{code}'"
    for code in LANGUAGES
]
POSTGRESQL_DROP = [f"DROP INDEX IF EXISTS knowledge_chunk_search_{code}_idx" for code in LANGUAGES]


def _on(vendor: str, statements: list[str]):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == vendor:
            for statement in statements:
                schema_editor.execute(statement)

    return run


def full_text_index(apps, schema_editor) -> None:
    _on("sqlite", SQLITE_CREATE)(apps, schema_editor)
    _on("postgresql", POSTGRESQL_CREATE)(apps, schema_editor)


def drop_full_text_index(apps, schema_editor) -> None:
    _on("sqlite", SQLITE_DROP)(apps, schema_editor)
    _on("postgresql", POSTGRESQL_DROP)(apps, schema_editor)


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Tag',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.SlugField(unique=True)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='Article',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('title', models.CharField(max_length=200)),
                ('slug', models.SlugField(help_text='A stable name for imports and evaluation sets, e.g. shipping-en.', max_length=100, unique=True)),
                ('body', models.TextField(help_text='Markdown. Each ## section becomes a passage the bot can quote, so give every answer its heading.')),
                ('language', models.CharField(choices=[('en', 'English'), ('it', 'Italian'), ('es', 'Spanish'), ('fr', 'French'), ('de', 'German'), ('pt', 'Portuguese'), ('nl', 'Dutch')], default=knowledge.models.default_language, max_length=8)),
                ('is_active', models.BooleanField(default=True, help_text='Only active articles are searched; deactivating keeps the text.', verbose_name='active')),
                ('url', models.URLField(blank=True, help_text='The public page of this article; customers see it only when KNOWLEDGE_SOURCE_LINKS is on.')),
                ('source', models.CharField(blank=True, help_text='The file it was imported from.', max_length=500)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('indexed_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('openai_file_id', models.CharField(blank=True, editable=False, max_length=100)),
                ('vector_store_error', models.CharField(blank=True, editable=False, max_length=255)),
                ('updated_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('tags', models.ManyToManyField(blank=True, related_name='articles', to='knowledge.tag')),
            ],
            options={
                'ordering': ['title'],
            },
        ),
        migrations.CreateModel(
            name='KnowledgeImport',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('file', models.FileField(help_text='Markdown, plain text, PDF or HTML.', upload_to=knowledge.models.import_path)),
                ('language', models.CharField(choices=[('en', 'English'), ('it', 'Italian'), ('es', 'Spanish'), ('fr', 'French'), ('de', 'German'), ('pt', 'Portuguese'), ('nl', 'Dutch')], default=knowledge.models.default_language, max_length=8)),
                ('status', models.CharField(choices=[('pending', 'Waiting'), ('reading', 'Reading'), ('indexing', 'Indexing'), ('done', 'Done'), ('failed', 'Failed')], default='pending', editable=False, max_length=16)),
                ('pages_done', models.PositiveIntegerField(default=0, editable=False)),
                ('pages_total', models.PositiveIntegerField(default=0, editable=False)),
                ('passages', models.PositiveIntegerField(default=0, editable=False)),
                ('error', models.CharField(blank=True, editable=False, max_length=500)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('finished_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('article', models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, to='knowledge.article')),
                ('created_by', models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('tags', models.ManyToManyField(blank=True, related_name='+', to='knowledge.tag')),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='TermCount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('language', models.CharField(max_length=8)),
                ('term', models.CharField(blank=True, max_length=64)),
                ('article_count', models.IntegerField(default=0)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('language', 'term'), name='unique_term_count')],
            },
        ),
        migrations.CreateModel(
            name='Chunk',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('position', models.PositiveIntegerField()),
                ('heading', models.CharField(blank=True, max_length=300)),
                ('text', models.TextField()),
                ('language', models.CharField(max_length=8)),
                ('terms', models.TextField()),
                ('heading_terms', models.TextField(blank=True)),
                ('search_vector', django.contrib.postgres.search.SearchVectorField(editable=False, null=True)),
                ('article', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='chunks', to='knowledge.article')),
            ],
            options={
                'ordering': ['article', 'position'],
                'constraints': [models.UniqueConstraint(fields=('article', 'position'), name='unique_chunk_position')],
            },
        ),
        migrations.RunPython(full_text_index, drop_full_text_index, elidable=False),
    ]
