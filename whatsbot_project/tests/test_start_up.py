"""What loading the app costs every process (each `manage.py` command, gunicorn, Celery, the
suite's own subprocesses): no library that only some of them use."""

import pytest

from .test_settings import PRODUCTION_ENV, manage

# Imported where they are used: the OpenAI SDK by conversations/ai.py and knowledge/vector_store.py,
# pypdf and BeautifulSoup by knowledge/parsers.py, Twisted by daphne (`manage.py run`, the ASGI
# server), the Redis client by the readiness check and the metrics scrape (ops/), jsonschema by
# agents/tools.py when a tool is checked or called. Loaded with the app they took about 1.2 s of
# CPU per process. Likewise, some 0.07 s and 150 modules: markdown-it by conversations/formatting.py
# (a reply formatted) and the knowledge admin's preview, the Snowball stemmers by knowledge/text.py
# (a text analysed), qrcode by the two-factor set-up page, Pillow where a photo is read or sent.
LOADED_WHERE_USED = {
    "openai", "pypdf", "bs4", "twisted", "redis", "jsonschema", "markdown_it", "snowballstemmer", "qrcode", "PIL",
}  # fmt: skip


@pytest.mark.slow
def test_a_management_command_does_not_import_what_only_some_processes_use():
    result = manage("check", env={**PRODUCTION_ENV, "PYTHONPROFILEIMPORTTIME": "1"})

    assert result.returncode == 0, result.stderr
    imported = {
        line.rpartition("|")[2].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert {"django", "celery", "whatsbot_project"} <= imported  # the import log is there
    assert imported & LOADED_WHERE_USED == set()


@pytest.mark.slow
def test_a_management_command_collects_its_garbage_but_not_what_loading_the_app_made():
    # manage.py turns the collector off while the app loads (its scans were 40 % of a command's
    # start), then freezes what loading made and turns it back on.
    result = manage("shell", "-c", "import gc; print(gc.isenabled(), gc.get_freeze_count())", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stderr
    enabled, frozen = result.stdout.split()[-2:]
    assert enabled == "True"
    assert int(frozen) > 100_000  # the app's modules, classes and functions
