"""An article's Markdown body into passages: one per section, long sections cut between paragraphs.

A passage is what the model reads and what a search returns, so it should answer one thing:
sections are how the writer already grouped their answers. Each passage keeps the heading it
sits under, which the search weighs more than the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# About 300 tokens: a few passages fit in every reply's input without crowding the conversation.
MAX_CHARS = 1200
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_BLOCK_LINE = re.compile(r"^(\s{4}|\s*([-*+>|#]|\d+[.)]|```|~~~))")


@dataclass(frozen=True)
class Passage:
    heading: str
    text: str


def split_into_passages(body: str, *, max_chars: int = MAX_CHARS) -> list[Passage]:
    passages: list[Passage] = []
    for heading, text in _sections(body):
        passages.extend(Passage(heading, part) for part in _pieces(text, max_chars))
    return passages


def _sections(body: str) -> list[tuple[str, str]]:
    """(heading path, text) per section. A level-1 heading is the article's own title, so
    sections under it are named by their own heading; deeper ones by their parents too."""
    sections: list[tuple[str, str]] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    in_fence = False

    def close() -> None:
        text = "\n".join(lines).strip()
        if text:
            sections.append((" > ".join(title for level, title in path if level > 1 or len(path) == 1), text))
        lines.clear()

    for line in body.replace("\r\n", "\n").split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            close()
            level = len(heading.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, heading.group(2).strip())]
            continue
        lines.append(line)
    close()
    return sections


def _pieces(text: str, max_chars: int) -> list[str]:
    """Paragraphs packed greedily up to max_chars; a paragraph longer than that is cut at
    sentence ends, then hard."""
    pieces: list[str] = []
    current = ""
    for paragraph in _paragraphs(text, max_chars):
        if current and len(current) + 2 + len(paragraph) > max_chars:
            pieces.append(current)
            current = paragraph
        else:
            current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        pieces.append(current)
    return pieces


def _paragraphs(text: str, max_chars: int) -> list[str]:
    result = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = _unwrap(paragraph.strip())
        while len(paragraph) > max_chars:
            cut = _sentence_end_before(paragraph, max_chars)
            result.append(paragraph[:cut].strip())
            paragraph = paragraph[cut:].strip()
        if paragraph:
            result.append(paragraph)
    return result


def _unwrap(paragraph: str) -> str:
    """A paragraph hard-wrapped in its file reads as one line (in Markdown a single newline is a
    space; WhatsApp would show it as a break). Lists, quotes, tables and code keep their lines."""
    lines = paragraph.split("\n")
    if len(lines) == 1 or any(_BLOCK_LINE.match(line) for line in lines):
        return paragraph
    return " ".join(line.strip() for line in lines)


def _sentence_end_before(text: str, limit: int) -> int:
    ends = [match.end() for match in re.finditer(r"[.!?…](\s|$)|\n", text[:limit])]
    ends = [end for end in ends if end > limit // 3]
    if ends:
        return ends[-1]
    space = text.rfind(" ", limit // 3, limit)
    return space if space > 0 else limit
