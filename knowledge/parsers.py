"""Files into articles: a title and a Markdown body, whatever the format.

Markdown and plain text are read as they are (Markdown may open with a YAML front matter of
title, slug, language, tags and url); PDF through pypdf, one section per page; HTML through
BeautifulSoup, keeping headings, paragraphs and list items of the page's main content. Those
two are imported when a PDF or a page is read: together they take about 0.15 s to import, which
every process loading the app would pay otherwise.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath

import yaml

SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".pdf": "pdf", ".html": "html", ".htm": "html"}
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.DOTALL)
_TITLE_HEADING = re.compile(r"\A\s*#\s+(.+?)\s*#*\s*(?:\n|\Z)")


class UnsupportedFile(ValueError):
    pass


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    body: str  # Markdown
    # From a Markdown front matter: slug, language, tags, url.
    metadata: dict = field(default_factory=dict)


def is_supported(name: str) -> bool:
    return PurePath(name).suffix.lower() in SUFFIXES


def parse_document(*, name: str, data: bytes, progress: Callable[[int, int], None] | None = None) -> ParsedDocument:
    """Raises UnsupportedFile for another format or a file that holds no text. `progress` is
    called with (pages read, pages) as a PDF is read."""
    kind = SUFFIXES.get(PurePath(name).suffix.lower())
    if kind is None:
        raise UnsupportedFile(f"{name}: not Markdown, text, PDF or HTML")
    fallback_title = _title_from_name(name)
    if kind == "markdown":
        document = _markdown(data.decode("utf-8-sig"), fallback_title)
    elif kind == "text":
        document = ParsedDocument(title=fallback_title, body=data.decode("utf-8-sig").strip())
    elif kind == "pdf":
        document = _pdf(data, fallback_title, progress)
    else:
        document = _html(data, fallback_title)
    if progress and kind != "pdf":
        progress(1, 1)
    if not document.body.strip():
        raise UnsupportedFile(f"{name}: no text found (a scanned PDF needs OCR first)")
    return document


def _title_from_name(name: str) -> str:
    stem = PurePath(name).stem
    return re.sub(r"[-_]+", " ", stem).strip().capitalize() or "Untitled"


def _markdown(text: str, fallback_title: str) -> ParsedDocument:
    metadata: dict = {}
    front = _FRONT_MATTER.match(text)
    if front:
        metadata = yaml.safe_load(front.group(1)) or {}
        if not isinstance(metadata, dict):
            raise UnsupportedFile("the front matter is not a mapping of keys to values")
        text = text[front.end() :]
    title = metadata.pop("title", "")
    heading = _TITLE_HEADING.match(text)
    if heading:
        # The title heading is the article's title, not a section of its body.
        title = title or heading.group(1)
        text = text[heading.end() :]
    return ParsedDocument(title=str(title or fallback_title), body=text.strip(), metadata=metadata)


def _pdf(data: bytes, fallback_title: str, progress: Callable[[int, int], None] | None) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        total = len(reader.pages)
    except PdfReadError as exc:
        raise UnsupportedFile(f"not a readable PDF ({exc})") from exc
    pages = []
    for number, page in enumerate(reader.pages, start=1):
        text = (page.extract_text() or "").strip()
        if text:
            pages.append(f"## Page {number}\n\n{_reflow(text)}")
        if progress:
            progress(number, total)
    title = (reader.metadata.title if reader.metadata else None) or fallback_title
    return ParsedDocument(title=str(title).strip(), body="\n\n".join(pages))


def _reflow(text: str) -> str:
    """PDF text comes in layout lines: join the lines of a paragraph, keep blank-line breaks."""
    paragraphs = re.split(r"\n\s*\n", text)
    return "\n\n".join(re.sub(r"\s*\n\s*", " ", paragraph).strip() for paragraph in paragraphs)


_SKIPPED_TAGS = ["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg"]
_BLOCKS = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "dt", "dd", "pre", "blockquote", "td"]


def _html(data: bytes, fallback_title: str) -> ParsedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(_SKIPPED_TAGS):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    title = ""
    blocks = []
    for element in root.find_all(_BLOCKS):
        if element.find_parent(_BLOCKS):
            continue  # its text is already in the enclosing block
        text = " ".join(element.get_text(" ", strip=True).split())
        if not text:
            continue
        if element.name == "h1" and not title:
            title = text
        elif element.name[0] == "h":
            blocks.append(f"{'#' * max(2, int(element.name[1]))} {text}")
        elif element.name == "li":
            blocks.append(f"- {text}")
        else:
            blocks.append(text)
    if not title and soup.title and soup.title.string:
        title = soup.title.string.strip()
    return ParsedDocument(title=title or fallback_title, body="\n\n".join(blocks))
