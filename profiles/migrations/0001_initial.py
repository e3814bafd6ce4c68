"""The profiles app's schema in one migration (squashed: no deployment had migrated the earlier ones).

On PostgreSQL, trigram indexes for the live inbox's contact search (conversations/selectors/search.py):
a word is looked up in one text per channel identity (its name and number) and one per contact
(names, email, company, number) through the index, not by reading every contact (100,000
contacts: 200 ms a search in bench/inbox.py). SQLite searches without them. They are SQL, not
`Meta.indexes`: a GIN index with an operator class exists only on PostgreSQL, and the models'
indexes are built on every database. A migration that drops or renames a column they name must
create them again.
"""

import django.db.models.deletion
from django.db import migrations, models


# The exact expressions conversations/selectors/search.py matches, so the planner uses the indexes.
TRIGRAM_INDEXES = {
    "identity_search_trgm_idx": ("profiles_clientprofile", "lower(display_name || ' ' || phone_number)"),
    "contact_search_trgm_idx": (
        "profiles_contact",
        "lower(first_name || ' ' || last_name || ' ' || email || ' ' || company || ' ' || coalesce(phone_number, ''))",
    ),
}


def create_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # A trusted extension (PostgreSQL 13+): the database's owner may create it.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, (table, text) in TRIGRAM_INDEXES.items():
        schema_editor.execute(f"CREATE INDEX {name} ON {table} USING gin (({text}) gin_trgm_ops)")
        # Statistics of the indexed expression: how many rows a word matches is then estimated.
        schema_editor.execute(f"ANALYZE {table}")


def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in TRIGRAM_INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='Contact',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('phone_number', models.CharField(blank=True, help_text='New identities with this number join.', max_length=32, null=True, unique=True)),
                ('first_name', models.CharField(blank=True, max_length=100)),
                ('last_name', models.CharField(blank=True, max_length=100)),
                ('company', models.CharField(blank=True, max_length=200)),
                ('email', models.EmailField(blank=True, max_length=254)),
                ('field_sources', models.JSONField(blank=True, default=dict)),
                ('details_declined_at', models.DateTimeField(blank=True, null=True)),
                ('opted_out_at', models.DateTimeField(blank=True, help_text='When the person asked for no more bot messages.', null=True)),
                ('opted_in_at', models.DateTimeField(blank=True, help_text='When the person last asked to resume them.', null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.CreateModel(
            name='ClientProfile',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('provider', models.CharField(choices=[('meta', 'Meta Cloud API'), ('twilio', 'Twilio'), ('webchat', 'Web chat')], max_length=16)),
                ('external_id', models.CharField(max_length=160)),
                ('phone_number', models.CharField(blank=True, help_text='E.164, when known.', max_length=32)),
                ('display_name', models.CharField(blank=True, help_text='As the provider gave it.', max_length=200)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('contact', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='identities', to='profiles.contact')),
            ],
            options={
                'verbose_name': 'channel identity',
                'verbose_name_plural': 'channel identities',
                'indexes': [models.Index(fields=['phone_number'], name='profiles_cl_phone_n_a43bd1_idx')],
                'constraints': [models.UniqueConstraint(fields=('provider', 'external_id'), name='unique_profile_per_provider_user')],
            },
        ),
        migrations.RunPython(create_trigram_indexes, drop_trigram_indexes, elidable=False),
    ]
