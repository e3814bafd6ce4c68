"""Words into search terms, the same way on every database.

A text is split into words, stop words are dropped, the rest are stemmed with the Snowball
stemmer of the article's language (the algorithm PostgreSQL's language configurations use) and
folded to ASCII. SQLite's FTS5 indexes these terms as they are; on PostgreSQL the database
stems the same words itself, and the terms here score the candidates it finds (selectors).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Language code → Snowball stemmer, which is also the name of PostgreSQL's text search
# configuration. Any other language is searched word for word ('simple').
STEMMERS = {
    "en": "english",
    "it": "italian",
    "es": "spanish",
    "fr": "french",
    "de": "german",
    "pt": "portuguese",
    "nl": "dutch",
}
LANGUAGE_CHOICES = [
    ("en", "English"),
    ("it", "Italian"),
    ("es", "Spanish"),
    ("fr", "French"),
    ("de", "German"),
    ("pt", "Portuguese"),
    ("nl", "Dutch"),
]
_WORD = re.compile(r"[^\W_]+")
_MAX_TERM_LENGTH = 64
_STOPWORD_FILES = Path(__file__).parent / "stopwords"


@dataclass(frozen=True)
class QueryTerm:
    word: str  # as the customer wrote it (lower case): PostgreSQL stems it with its own configuration
    term: str  # stemmed and folded, as indexed


def search_config(language: str) -> str:
    """PostgreSQL's text search configuration for a language code."""
    return STEMMERS.get(language, "simple")


def analyze(text: str, *, language: str) -> list[str]:
    """The search terms of a text, in order, repeats kept."""
    return [term for _, term in _words_and_terms(text, language)]


def analyze_query(text: str, *, language: str) -> list[QueryTerm]:
    """The distinct search terms of a question. Numbers are left out: an order number or a
    quantity names no topic, and as a term no article holds it would only sink the match."""
    seen: dict[str, QueryTerm] = {}
    for word, term in _words_and_terms(text, language):
        if not word.isdigit() and term not in seen:
            seen[term] = QueryTerm(word=word, term=term)
    return list(seen.values())


def guess_language(text: str, *, among: list[str]) -> str | None:
    """The language among `among` whose stop words the text uses most; None on a tie or none.
    Questions are short, but almost none is without a 'the', 'how', 'il' or 'come'."""
    words = [fold(word) for word in _WORD.findall(text.lower())]
    counts = {language: sum(word in _stopwords(language) for word in words) for language in among}
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    if not ranked or ranked[0][1] == 0 or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def _words_and_terms(text: str, language: str) -> list[tuple[str, str]]:
    pairs = []
    for word in _WORD.findall(text.lower()):
        term = _term(language, word)
        if term:
            pairs.append((word, term))
    return pairs


@functools.lru_cache(maxsize=200_000)
def _term(language: str, word: str) -> str:
    """The word's search term, '' for a stop word or a word too short or too long. Cached: the
    Snowball stemmers are pure Python (~50 µs a word) and a vocabulary is small."""
    if len(word) < 2 or len(word) > _MAX_TERM_LENGTH or fold(word) in _stopwords(language):
        return ""
    name = STEMMERS.get(language)
    return fold(_stemmer(name).stemWord(word) if name else word)


@functools.cache
def _stemmer(name: str) -> Any:  # snowballstemmer ships no types
    import snowballstemmer  # every language's stemmer, some 40 modules: loaded when a text is analysed

    return snowballstemmer.stemmer(name)


@functools.cache
def _stopwords(language: str) -> frozenset[str]:
    path = _STOPWORD_FILES / f"{language}.txt"
    if not path.exists():
        return frozenset()
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(fold(line.strip()) for line in lines if line.strip() and not line.startswith("#"))


def fold(text: str) -> str:
    """Without accents: 'città' and 'citta' are one term. PostgreSQL is given folded text too,
    so that its lexemes are the terms made here (it has no unaccent without an extension)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))
