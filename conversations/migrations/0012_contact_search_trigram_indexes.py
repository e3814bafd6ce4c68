"""Trigram indexes for the live inbox's contact search on PostgreSQL (selectors/search.py): a word
is looked up in one text per channel identity (its name and number) and one per contact (names,
email, company, number) through the index, not by reading every contact (100,000 contacts: 200 ms
a search in bench/inbox.py). SQLite searches without them."""

from django.db import migrations

# The exact expressions selectors/search.py matches, so the planner uses the indexes.
INDEXES = {
    "identity_search_trgm_idx": ("profiles_clientprofile", "lower(display_name || ' ' || phone_number)"),
    "contact_search_trgm_idx": (
        "profiles_contact",
        "lower(first_name || ' ' || last_name || ' ' || email || ' ' || company || ' ' || coalesce(phone_number, ''))",
    ),
}


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # A trusted extension (PostgreSQL 13+): the database's owner may create it.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, (table, text) in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (({text}) gin_trgm_ops)")
        # Statistics of the indexed expression: how many rows a word matches is then estimated.
        schema_editor.execute(f"ANALYZE {table}")


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("conversations", "0011_use_simulator_permission"), ("profiles", "0004_person_fields_on_contact")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
