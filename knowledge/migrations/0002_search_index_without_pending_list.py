from django.db import migrations

# PostgreSQL: the passages' GIN indexes (0001) without their pending list. With it (the default,
# fastupdate), new passages wait in an unsorted list, up to 4 MB (~1,600 passages), until a
# VACUUM merges them, and every search reads the whole list on each index scan: ~0.7 ms a scan,
# half of a search's database time at 10,000 passages (bench/knowledge.py). Articles change far
# less often than customers ask, so each passage goes into the index as it is written; the
# entries already pending are merged now. An index for a new language needs the same setting.
LANGUAGES = ["en", "it", "es", "fr", "de", "pt", "nl"]


def _set_fastupdate(enabled: bool):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        for code in LANGUAGES:
            index = f"knowledge_chunk_search_{code}_idx"
            schema_editor.execute(f"ALTER INDEX {index} SET (fastupdate = {'on' if enabled else 'off'})")
            if not enabled:
                schema_editor.execute("SELECT gin_clean_pending_list(%s::regclass)", [index])

    return run


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0001_initial")]

    operations = [migrations.RunPython(_set_fastupdate(False), _set_fastupdate(True))]
