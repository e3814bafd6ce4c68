"""Files into articles: the parsers, `manage.py import_knowledge`, and uploads in the admin."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from knowledge import services
from knowledge.models import Article, KnowledgeImport
from knowledge.parsers import UnsupportedFile, parse_document
from knowledge.selectors import search_knowledge

FIXTURES = Path(__file__).parent / "fixtures"
PAGE = b"""<!doctype html><html><head><title>Care guide</title><script>alert(1)</script></head><body>
<nav><a href="/">Home</a> <a href="/shop">Shop</a></nav>
<main><h1>Caring for cast iron</h1><p>Rinse with <b>hot water</b> only.</p>
<h2>Rust</h2><ul><li>Dry at once.</li><li>Rub with oil.</li></ul></main>
<footer>Copyright Tazza Blu</footer></body></html>"""
MARKDOWN = b"""---
title: Gift cards
slug: gift-cards
language: en
tags: [gifts, orders]
url: https://shop.example/gifts
---
# Ignored heading title

## Validity
Gift cards are valid for 12 months.
"""


def test_markdown_takes_its_title_and_settings_from_the_front_matter():
    document = parse_document(name="gifts.md", data=MARKDOWN)
    assert document.title == "Gift cards"
    assert document.metadata == {
        "slug": "gift-cards",
        "language": "en",
        "tags": ["gifts", "orders"],
        "url": "https://shop.example/gifts",
    }
    assert document.body == "## Validity\nGift cards are valid for 12 months."


def test_html_keeps_the_main_content_as_markdown_and_drops_scripts_and_navigation():
    document = parse_document(name="care.html", data=PAGE)
    assert document.title == "Caring for cast iron"
    assert document.body == "Rinse with hot water only.\n\n## Rust\n\n- Dry at once.\n\n- Rub with oil."


def test_a_pdf_becomes_one_section_per_page_and_reports_its_progress():
    progress = []
    document = parse_document(
        name="teapot-care.pdf", data=(FIXTURES / "teapot-care.pdf").read_bytes(), progress=lambda *p: progress.append(p)
    )
    assert document.title == "Teapot care"
    assert document.body.startswith("## Page 1\n\nWarranty Every teapot has a two year warranty")
    assert "## Page 2\n\nDescaling Descale the kettle every month" in document.body
    assert progress == [(1, 2), (2, 2)]


def test_other_formats_and_empty_files_are_refused():
    with pytest.raises(UnsupportedFile):
        parse_document(name="photo.jpg", data=b"\xff\xd8")
    with pytest.raises(UnsupportedFile):
        parse_document(name="empty.txt", data=b"   ")
    with pytest.raises(UnsupportedFile):
        parse_document(name="broken.pdf", data=b"not a pdf")


@pytest.mark.django_db
def test_import_knowledge_imports_a_folder_and_updates_an_article_on_a_second_run(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "gifts.md").write_bytes(MARKDOWN)
    (tmp_path / "sub" / "care.html").write_bytes(PAGE)
    (tmp_path / "sub" / "teapot-care.pdf").write_bytes((FIXTURES / "teapot-care.pdf").read_bytes())
    (tmp_path / "notes.txt").write_text("Our kettles boil water in two minutes.")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")  # not a supported format: not even looked at
    out = StringIO()

    call_command("import_knowledge", str(tmp_path), "--tag", "care", "--no-progress", stdout=out)

    assert "Imported 4 files into 6 passages; 0 skipped." in out.getvalue()
    assert sorted(Article.objects.values_list("title", flat=True)) == [
        "Caring for cast iron",
        "Gift cards",
        "Notes",
        "Teapot care",
    ]
    gifts = Article.objects.get(slug="gift-cards")
    assert sorted(gifts.tags.values_list("name", flat=True)) == ["care", "gifts", "orders"]
    assert search_knowledge("How long does the kettle take to boil?")[0].title == "Notes"

    (tmp_path / "notes.txt").write_text("Our kettles boil water in ninety seconds.")
    call_command("import_knowledge", str(tmp_path / "notes.txt"), "--no-progress", stdout=StringIO())
    assert Article.objects.count() == 4
    assert "ninety seconds" in search_knowledge("How long does the kettle take to boil?")[0].text


@pytest.mark.django_db
def test_import_knowledge_reports_what_it_skipped_and_refuses_a_missing_path(tmp_path):
    (tmp_path / "empty.md").write_text("")
    out, err = StringIO(), StringIO()
    call_command("import_knowledge", str(tmp_path), "--no-progress", stdout=out, stderr=err)
    assert "Imported 0 files into 0 passages; 1 skipped." in out.getvalue()
    assert "empty.md" in err.getvalue()
    with pytest.raises(CommandError, match="does not exist"):
        call_command("import_knowledge", str(tmp_path / "nope"), "--no-progress")


@pytest.mark.django_db
def test_a_small_upload_in_the_admin_is_indexed_at_once(admin_client):
    response = admin_client.post(
        "/admin/knowledge/knowledgeimport/add/",
        {"file": SimpleUploadedFile("notes.txt", b"Our kettles boil water in two minutes."), "language": "en"},
    )
    assert response.status_code == 302
    upload = KnowledgeImport.objects.get()
    assert (upload.status, upload.passages, upload.article.title) == ("done", 1, "Notes")
    assert upload.article.updated_by.username == "admin"


@pytest.mark.django_db
def test_a_large_upload_is_read_by_a_celery_task_that_records_its_progress(admin_client, settings, monkeypatch):
    settings.KNOWLEDGE_BACKGROUND_IMPORT_BYTES = 100
    seen = []  # what the admin would show at each page the task reads
    parse = services.parse_document

    def parse_and_watch(*, name, data, progress):
        def watch(done: int, total: int) -> None:
            progress(done, total)
            seen.append(KnowledgeImport.objects.values_list("status", "pages_done", "pages_total").get())

        return parse(name=name, data=data, progress=watch)

    monkeypatch.setattr(services, "parse_document", parse_and_watch)
    pdf = SimpleUploadedFile("teapot-care.pdf", (FIXTURES / "teapot-care.pdf").read_bytes(), "application/pdf")

    response = admin_client.post("/admin/knowledge/knowledgeimport/add/", {"file": pdf, "language": "en"}, follow=True)

    assert "being read and indexed" in response.content.decode()
    assert seen == [("reading", 1, 2), ("indexing", 2, 2)]
    upload = KnowledgeImport.objects.get()
    assert (upload.status, upload.passages, upload.article.title) == ("done", 2, "Teapot care")
    assert "2 passages" in admin_client.get("/admin/knowledge/knowledgeimport/").content.decode()
