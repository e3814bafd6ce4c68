"""The shipped evaluation set: its shape, the retrieval targets, and the same answers on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from knowledge.evaluation import evaluate_retrieval, load_eval_set, summarize
from knowledge.models import Article

EVAL_SET = Path(settings.BASE_DIR) / "knowledge" / "eval" / "demo.yaml"


def test_the_shipped_set_has_forty_questions_in_two_languages_and_ten_unanswerable():
    questions = load_eval_set(EVAL_SET)
    assert len(questions) >= 40
    assert sum(not question.is_answerable for question in questions) >= 10
    languages = {slug.rsplit("-", 1)[-1] for question in questions for slug in question.articles}
    assert languages == {"en", "it"}


@pytest.mark.django_db
def test_retrieval_meets_the_targets_on_the_shipped_set(demo_knowledge):
    known = set(Article.objects.values_list("slug", flat=True))
    questions = load_eval_set(EVAL_SET)
    assert {slug for question in questions for slug in question.articles} <= known

    report = summarize(evaluate_retrieval(questions, passages=settings.KNOWLEDGE_CONTEXT_PASSAGES))

    assert report.hit_at_3 >= 0.9
    assert report.abstention_precision >= 0.9
    out = StringIO()
    call_command("eval_knowledge", str(EVAL_SET), "--retrieval", stdout=out)
    assert f"hit@3                 {report.hit_at_3:.3f}" in out.getvalue()


@pytest.mark.postgres
@pytest.mark.django_db
def test_sqlite_and_postgresql_pick_the_same_top_article_for_every_question(demo_knowledge, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("compares PostgreSQL with SQLite: set DATABASE_URL to PostgreSQL")
    on_sqlite = tmp_path / "sqlite.json"
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "eval_knowledge",
            str(EVAL_SET),
            "--retrieval",
            "--demo-database",
            "--json",
            str(on_sqlite),
        ],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": "sqlite://:memory:"},
        check=True,
        capture_output=True,
        timeout=110,
    )
    outcomes = evaluate_retrieval(load_eval_set(EVAL_SET), passages=settings.KNOWLEDGE_CONTEXT_PASSAGES)

    sqlite_top = [(row["q"], row["used"][:1]) for row in json.loads(on_sqlite.read_text())]
    postgresql_top = [(outcome.question.text, list(outcome.used[:1])) for outcome in outcomes]
    assert postgresql_top == sqlite_top
