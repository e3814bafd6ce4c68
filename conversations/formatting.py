"""Model Markdown to what each channel shows, and long texts split to the channel's limit.

WhatsApp has its own markup (*bold*, _italic_, ~strike~, ```monospace```, "- " lists, "> "
quotes; no links or headings); SMS shows plain text. The Markdown is parsed (markdown-it-py,
CommonMark plus strikethrough and tables), never pattern-matched, so code spans and nested
emphasis come out right.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import TYPE_CHECKING

from django.conf import settings

from conversations.models import Channel

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.tree import SyntaxTreeNode

_WHATSAPP_MARKS = {"strong": "*", "em": "_", "s": "~"}
_MONO = "```"
# One character outside GSM-7 turns a whole SMS into UCS-2 (70 instead of 160 per segment):
# typographic punctuation models love is mapped to its plain twin.
_GSM_FRIENDLY = str.maketrans(
    {
        "\u201c": '"',  # left double quotation mark
        "\u201d": '"',
        "\u201e": '"',
        "\u2018": "'",  # left single quotation mark
        "\u2019": "'",
        "\u2013": "-",  # en dash
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
    }
)
# Sentence ends in Latin, CJK (full-width) and ellipsis punctuation, closing quotes allowed.
_SENTENCE_END = re.compile("[.!?\u2026\u3002\uff01\uff1f][\"'\u201d\u2019)\\]\u00bb]*\\s+")
_ZWJ = "\u200d"


def format_for_channel(text: str, *, channel: str, is_markdown: bool = True) -> list[str]:
    """The parts to send, in order: converted for the channel, each within its limit."""
    if channel == Channel.TWILIO_SMS:
        body = to_plain_text(text) if is_markdown else text.translate(_GSM_FRIENDLY)
        limit = settings.SMS_MAX_CHARS
    elif channel == Channel.WEBCHAT:
        # The widget shows text as text: no markup of any kind, one bubble per WhatsApp-sized part.
        body = to_plain_text(text) if is_markdown else text
        limit = settings.WHATSAPP_META_MAX_CHARS
    else:
        body = to_whatsapp(text) if is_markdown else text
        limit = (
            settings.WHATSAPP_META_MAX_CHARS if channel == Channel.META_WHATSAPP else settings.WHATSAPP_TWILIO_MAX_CHARS
        )
    return split_text(body, limit=limit)


def to_whatsapp(markdown: str) -> str:
    return _Renderer(whatsapp=True).render(markdown)


def to_plain_text(markdown: str) -> str:
    return _Renderer(whatsapp=False).render(markdown).translate(_GSM_FRIENDLY)


@functools.cache
def _parser() -> MarkdownIt:
    # Loaded when a reply is formatted: markdown-it is some 60 modules every process would load.
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["strikethrough", "table"])


class _Renderer:
    def __init__(self, *, whatsapp: bool) -> None:
        self.whatsapp = whatsapp

    def render(self, markdown: str) -> str:
        from markdown_it.tree import SyntaxTreeNode

        tree = SyntaxTreeNode(_parser().parse(markdown))
        return self._blocks(tree.children).strip()

    def _blocks(self, nodes: list[SyntaxTreeNode], separator: str = "\n\n") -> str:
        rendered = (self._block(node) for node in nodes)
        return separator.join(text for text in rendered if text.strip())

    def _block(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind == "paragraph":
            return self._inline_of(node)
        if kind == "heading":
            return self._wrap(self._inline_of(node), "*")
        if kind in ("bullet_list", "ordered_list"):
            return self._list(node)
        if kind == "blockquote":
            inner = self._blocks(node.children)
            return "\n".join(f"> {line}" if self.whatsapp else line for line in inner.split("\n"))
        if kind in ("fence", "code_block"):
            code = node.content.rstrip("\n")
            return f"{_MONO}\n{code}\n{_MONO}" if self.whatsapp else code
        if kind == "table":
            return self._table(node)
        if kind == "html_block":
            return node.content.strip()
        return ""  # hr: a blank line between blocks says as much

    def _list(self, node: SyntaxTreeNode) -> str:
        start = int(node.attrs.get("start", 1)) if node.type == "ordered_list" else None
        lines = []
        for offset, item in enumerate(node.children):
            marker = f"{start + offset}. " if start is not None else "- "
            body = self._blocks(item.children, separator="\n")
            first, *rest = body.split("\n") if body else [""]
            lines.append(marker + first)
            lines.extend(" " * len(marker) + line if line else line for line in rest)
        return "\n".join(lines)

    def _table(self, node: SyntaxTreeNode) -> str:
        rows = []
        for section in node.children:
            for row in section.children:
                cells = [self._inline_of(cell) for cell in row.children]
                line = " | ".join(cells)
                rows.append(self._wrap(line, "*") if section.type == "thead" else line)
        return "\n".join(rows)

    def _inline_of(self, node: SyntaxTreeNode) -> str:
        return "".join(self._inline(child) for child in node.children)

    def _inline(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind == "inline":
            return self._inline_of(node)
        if kind in ("text", "html_inline"):
            return node.content
        if kind in ("softbreak", "hardbreak"):
            return "\n"
        if kind in _WHATSAPP_MARKS:
            return self._wrap(self._inline_of(node), _WHATSAPP_MARKS[kind])
        if kind == "code_inline":
            return f"{_MONO}{node.content}{_MONO}" if self.whatsapp and node.content.strip() else node.content
        if kind == "link":
            return self._link(self._inline_of(node), str(node.attrs.get("href", "")))
        if kind == "image":
            return self._link(self._inline_of(node), str(node.attrs.get("src", "")))
        return self._inline_of(node)

    def _wrap(self, text: str, mark: str) -> str:
        if not self.whatsapp or not text.strip():
            return text
        # WhatsApp only formats when the marks touch the words: "*bold *" shows the stars.
        core = text.strip()
        lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
        return f"{lead}{mark}{core}{mark}{trail}"

    @staticmethod
    def _link(label: str, url: str) -> str:
        plain_label = label.strip("*_~` ")
        if not url or plain_label in (url, url.removeprefix("mailto:")):
            return label or url
        return f"{label} ({url})" if label else url


def split_text(text: str, *, limit: int) -> list[str]:
    """Cut `text` into parts of at most `limit` UTF-16 units at the best boundary available:
    paragraph, line, sentence, then word. Only a run with no space longer than the limit is
    cut hard (never inside a surrogate pair or an emoji sequence). Nothing but the whitespace
    at the cuts is dropped."""
    parts = []
    rest = text.strip()
    while _utf16_length(rest) > limit:
        cut = _best_cut(rest, limit)
        head, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        parts.append(head)
    if rest:
        parts.append(rest)
    return parts


def _best_cut(text: str, limit: int) -> int:
    fits = _longest_prefix_within(text, limit)
    window = text[: fits + 1]  # a boundary exactly at the limit still counts
    floor = fits // 3  # a boundary very early would waste a whole message on a few words
    for boundary in ("\n\n", "\n"):
        position = window.rfind(boundary)
        if position > floor:
            return position
    sentence_ends = [match.end() for match in _SENTENCE_END.finditer(window) if match.end() <= fits]
    if sentence_ends and sentence_ends[-1] > floor:
        return sentence_ends[-1]
    spaces = [index for index, char in enumerate(window) if char.isspace() and index > 0]
    if spaces:
        return spaces[-1]
    return _safe_hard_cut(text, fits)


def _longest_prefix_within(text: str, limit: int) -> int:
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def _safe_hard_cut(text: str, cut: int) -> int:
    original = cut
    while cut > 1 and _joins_previous(text, cut):
        cut -= 1
    return cut if cut > 0 else original


def _joins_previous(text: str, index: int) -> bool:
    """True when the character at `index` belongs to the glyph before it (accent, ZWJ sequence,
    variation selector, skin tone)."""
    char, previous = text[index], text[index - 1]
    return (
        unicodedata.combining(char) > 0
        or char == _ZWJ
        or previous == _ZWJ
        or "\ufe00" <= char <= "\ufe0f"
        or "\U0001f3fb" <= char <= "\U0001f3ff"
    )


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2
