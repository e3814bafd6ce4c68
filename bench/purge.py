"""Benchmark: purge_expired over 1,000,000 expired messages on PostgreSQL, in bounded memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/whatsbot_bench python bench/purge.py [--messages N]

Uses its own database (created if missing; default whatsbot_bench, never the app's), fills it with
INSERT ... SELECT generate_series (no Python objects per row), then runs the purge the command
runs and reports wall time and peak RSS. The purge works in batches of PURGE_BATCH_SIZE ids, so
peak memory must not grow with the table.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/whatsbot_bench")

DEFAULT_MESSAGES = 1_000_000
KEPT_MESSAGES = 10_000
CONVERSATIONS = 1_000
ATTACHMENT_EVERY = 20  # one expired message in 20 has an attachment row (no file: this is about rows)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def ensure_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def set_up_django(url: str, *, script: str, example_name: str) -> None:
    """Django on the benchmark's own PostgreSQL database, created if missing and migrated."""
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit(f"{script} needs PostgreSQL: set DATABASE_URL=postgres://…/{example_name}")
    ensure_database(url)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def insert_rows(model, count: int, expressions: dict[str, str]) -> None:
    """INSERT ... SELECT over generate_series, filling every other column with its Django default,
    so the benchmark keeps working when fields are added to the model. A literal % is written %%."""
    from django.db import connection

    columns, values, args = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key and field.column not in expressions:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.column in expressions:
            values.append(expressions[field.column])
        elif field.null:
            values.append("NULL")
        else:
            values.append("%s")
            args.append(field.get_db_prep_save(field.get_default(), connection))
    sql = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM generate_series(1, %s) AS g"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*args, count])


def truncate(*models) -> None:
    from django.db import connection

    tables = [model._meta.db_table for model in models]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def insert_conversations(
    count: int, *, contact: dict[str, str], profile: dict[str, str], conversation: dict[str, str]
) -> None:
    """`count` contacts, each with one Meta identity and one conversation on it (all three numbered g);
    the columns given add to or replace the ones every benchmark fills."""
    from conversations.models import Conversation
    from profiles.models import ClientProfile, Contact

    now = {"created_at": "now()", "updated_at": "now()"}
    insert_rows(Contact, count, {**now, **contact})
    insert_rows(
        ClientProfile,
        count,
        {"contact_id": "g", "provider": "'meta'", "external_id": "'US.bench' || g", **now, **profile},
    )
    insert_rows(
        Conversation,
        count,
        {"profile_id": "g", "channel": "'meta_whatsapp'", "business_address": "'110000000000001'", **conversation},
    )


def fill(messages: int) -> None:
    from django.db import connection

    from conversations.models import Attachment, Conversation, Message, ProcessedMessage
    from profiles.models import ClientProfile, Contact

    truncate(Attachment, Message, Conversation, ProcessedMessage, ClientProfile, Contact)
    insert_conversations(
        CONVERSATIONS,
        contact={},
        profile={},
        conversation={
            "status": "'closed'",
            "created_at": "now() - interval '500 days'",
            "updated_at": "now() - interval '400 days'",
        },
    )
    old = "now() - interval '400 days' + g * interval '1 millisecond'"
    message_columns = {
        "uid": "gen_random_uuid()",
        "conversation_id": f"1 + (g %% {CONVERSATIONS})",
        "direction": "'in'",
        "author": "'customer'",
        "kind": "'text'",
        "text": "'Expired customer message number ' || g",
        "provider": "'meta'",
        "provider_message_id": "'wamid.bench' || g",
        "status": "'handled'",
        "created_at": old,
        "updated_at": old,
    }
    insert_rows(Message, messages, message_columns)
    recent = {**message_columns, "created_at": "now()", "updated_at": "now()"}
    recent["provider_message_id"] = "'wamid.recent' || g"
    recent["conversation_id"] = "1 + (g %% 100)"  # the other conversations are left empty
    insert_rows(Message, KEPT_MESSAGES, recent)
    insert_rows(
        Attachment,
        messages // ATTACHMENT_EVERY,
        {"message_id": f"g * {ATTACHMENT_EVERY}", "content_type": "'image/jpeg'", "created_at": "now()"},
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--batch-size", type=int, default=None, help="Default: PURGE_BATCH_SIZE (2000).")
    args = parser.parse_args()

    set_up_django(os.environ["DATABASE_URL"], script="bench/purge.py", example_name="whatsbot_bench")
    from django.conf import settings

    from conversations.models import Message
    from gdpr.retention import purge_expired

    started = time.perf_counter()
    fill(args.messages)
    print(f"filled {Message.objects.count():,} messages in {time.perf_counter() - started:.1f}s")

    rss_before = peak_rss_mib()
    started = time.perf_counter()
    summary = purge_expired(retention_days=365, batch_size=args.batch_size)
    elapsed = time.perf_counter() - started
    rss_after = peak_rss_mib()

    left = Message.objects.count()
    assert summary.messages == args.messages and left == KEPT_MESSAGES, (summary, left)
    batch = args.batch_size or settings.PURGE_BATCH_SIZE
    print(
        f"purged {summary.messages:,} messages, {summary.attachments:,} attachments, "
        f"{summary.conversations:,} empty conversations in {elapsed:.1f}s "
        f"({summary.messages / elapsed:,.0f} messages/s, batches of {batch}); kept {left:,}"
    )
    print(f"peak RSS: {rss_before:.0f} MiB before the purge, {rss_after:.0f} MiB after (+{rss_after - rss_before:.0f})")


if __name__ == "__main__":
    main()
