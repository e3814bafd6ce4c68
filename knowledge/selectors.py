"""Reads of the knowledge base: search_knowledge, and what the reply path asks around it.

A search runs in two steps. The database finds candidates with its full-text index and ranks
them with its own function: FTS5's bm25 on SQLite; `ts_rank` over the GIN-indexed tsvector, in
the article language's configuration, on PostgreSQL. Then one portable score orders the best
candidates and decides which are relevant at all:

    relevance = Σ idf(t) · match(t) over the question's terms t
                ───────────────────────────────────────────────
                Σ idf(t) over the question's terms

- idf(t) = ln(1 + (A - a + 0.5) / (a + 0.5)), A searchable articles in the language, a of them
  using t (TermCount). Counted per article, not per passage: a word every article uses (the
  shop's "tea", "order") says nothing about which one answers, while the topic word an article
  repeats in each section stays heavy. A word no article uses ("bitcoin") weighs most, so a
  question about something the business never wrote about scores low and gets no passage.
- match(t) = 1 when the passage holds the term, 0.6 when it holds one that starts like it
  (the first letters but two, at least 5: "deliv"·ered and "deliveri"·es, "sped"·ite and
  "spedizion"·i are one word that stemming splits), else 0.

So relevance is the share of the question's information the passage holds, from 0 to 1. Ties
go to the passage whose heading holds more of the question, then to the shorter one.

The terms are looked up heaviest first (MaxScore): a passage holding none of the terms read so
far scores at most the share of those not read yet, so the search stops once that share is below
the threshold or below the `limit`-th best score found: exact, and it rarely reads the long lists
of common words. A term held by more than ENUMERATE_LIMIT passages is not listed (one used by more
articles than that is not even read to learn it): the database ranks the first RANK_POOL passages
holding the remaining terms itself and hands over its best CANDIDATES. Ranking every passage
that holds a common word reads thousands for little: at 10,000 passages the capped pool's top
passage is as relevant as reading every list finds, for each question of the shipped set
(bench/RESULTS.md, issue 14). The score reads only the terms stored with each passage, so SQLite
and PostgreSQL order the candidates alike and apply the same threshold, KNOWLEDGE_MIN_RELEVANCE,
calibrated on the shipped evaluation set (README, Knowledge base).
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from knowledge.models import Article, TermCount
from knowledge.text import STEMMERS, QueryTerm, analyze, analyze_query

# Passages listed per term before it counts as too common to list; then the passages the
# database ranks best among the first RANK_POOL holding the remaining terms.
ENUMERATE_LIMIT = 200
CANDIDATES = 40
RANK_POOL = 1000
_MIN_PREFIX = 5
_PARTIAL_MATCH = 0.6
_ALL_LANGUAGES = list(STEMMERS)


@dataclass(frozen=True)
class KnowledgeHit:
    chunk_id: int
    article_id: int
    title: str
    heading: str
    text: str
    language: str
    url: str
    relevance: float

    @property
    def label(self) -> str:
        """The id the model sees and cites: K plus the passage's id."""
        return f"K{self.chunk_id}"

    @property
    def source(self) -> dict:
        """What a bot message records of the passage it used (no personal data)."""
        return {
            "chunk_id": self.chunk_id,
            "article_id": self.article_id,
            "title": self.title,
            "heading": self.heading,
            "url": self.url,
        }


def search_knowledge(
    query: str,
    *,
    language: str | None = None,
    tags: Sequence[str] = (),
    limit: int = 5,
    min_relevance: float | None = None,
) -> list[KnowledgeHit]:
    """The passages that best answer `query`, most relevant first, each above the relevance
    threshold. `language=None` searches every language, each with its own analysis; `tags`
    keeps articles with any of them."""
    threshold = settings.KNOWLEDGE_MIN_RELEVANCE if min_relevance is None else min_relevance
    queries = {code: analyze_query(query, language=code) for code in ([language] if language else _ALL_LANGUAGES)}
    queries = {code: terms for code, terms in queries.items() if terms}
    ranked: list[tuple[tuple, int]] = []
    counts = _term_counts(queries)
    holding = {
        code: {term.term: counts.get((code, term.term), 0) for term in terms}
        for code, terms in queries.items()
        if counts.get((code, ""), 0) > 0  # else no searchable article in this language
    }
    with _index_scans():
        for code, held in holding.items():
            articles = counts[(code, "")]
            weights = {term: _idf(count, articles) for term, count in held.items()}
            ranked += _best_passages(code, weights, held, tags, keep=limit, threshold=threshold)
    ranked.sort(reverse=True)
    return _hits([(key, pk) for key, pk in ranked if key[0] >= threshold][:limit])


def get_best_passage(*, query: str, hit: KnowledgeHit, max_chars: int = 700) -> str:
    """The paragraph of a long passage that holds most of the question's terms (the whole
    passage when it is short): what the offline responder quotes."""
    if len(hit.text) <= max_chars:
        return hit.text
    wanted = {term.term for term in analyze_query(query, language=hit.language)}
    paragraphs = [paragraph.strip() for paragraph in re.split(r"\n\s*\n", hit.text) if paragraph.strip()]
    return max(paragraphs, key=lambda paragraph: len(wanted & set(analyze(paragraph, language=hit.language))))


def has_knowledge() -> bool:
    """True once any active article has a passage: only then is the bot told to answer from it."""
    return TermCount.objects.filter(term="", article_count__gt=0).exists()


def list_knowledge_languages() -> list[str]:
    return sorted(TermCount.objects.filter(term="", article_count__gt=0).values_list("language", flat=True))


def get_articles_by_file_id(*, file_ids: Sequence[str]) -> dict[str, Article]:
    """Articles by the id of their copy in the OpenAI vector store (file_search citations)."""
    return {article.openai_file_id: article for article in Article.objects.filter(openai_file_id__in=file_ids)}


def _idf(holding: int, articles: int) -> float:
    return math.log(1 + (articles - holding + 0.5) / (holding + 0.5))


def _prefix(term: str) -> str | None:
    """The start a partial match shares with the term, or None for a term too short to have one."""
    return term[: max(_MIN_PREFIX, len(term) - 2)] if len(term) >= _MIN_PREFIX else None


def _term_counts(queries: dict[str, list[QueryTerm]]) -> dict[tuple[str, str], int]:
    # Each language with its own terms, so that both columns of the unique index are looked up
    # (the languages alone read every count of each: ~10 ms at 10,000 passages). Plain SQL: the
    # ORM took longer to build this than the database to answer it.
    clauses, params = [], []
    for language, terms in queries.items():
        wanted = [""] + [term.term for term in terms]
        clauses.append(f"(language = %s AND term IN ({', '.join(['%s'] * len(wanted))}))")
        params += [language, *wanted]
    if not clauses:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT language, term, article_count FROM knowledge_termcount WHERE {' OR '.join(clauses)}",  # noqa: S608 (values are parameters)
            params,
        )
        return {(language, term): count for language, term, count in cursor.fetchall()}


# What a _Row is read from.
_COLUMNS = (
    "knowledge_chunk.id AS id, knowledge_chunk.terms AS terms, knowledge_chunk.heading_terms AS heading_terms,"
    " length(knowledge_chunk.text) AS text_length"
)


@dataclass(frozen=True)
class _Row:
    """What scoring a passage needs, without its text."""

    pk: int
    terms: str
    heading_terms: str
    length: int


def _best_passages(
    language: str,
    weights: dict[str, float],
    holding: dict[str, int],
    tags: Sequence[str],
    *,
    keep: int,
    threshold: float,
) -> list[tuple[tuple, int]]:
    """The score of every passage that could be among the `keep` best above `threshold`."""
    total = sum(weights.values())
    query = [(term, _prefix(term), weight / total) for term, weight in weights.items()]
    scores: dict[int, tuple] = {}
    unread = total
    order = sorted(weights, key=lambda term: (-weights[term], term))
    for index, term in enumerate(order):
        best = sorted(scores.values(), reverse=True)
        kept = best[keep - 1][0] if len(best) >= keep else -1.0
        # The most an unread passage can score, rounded as scores are: it cannot even tie.
        bound = round(unread / total, 4)
        if bound < threshold or kept > bound:
            break
        if holding[term] == 0 and _prefix(term) is None:
            unread -= weights[term]  # no passage holds it, nor a word it starts
            continue
        # Used by more articles than the limit, it is in more passages still: not read to learn it.
        listable = holding[term] <= ENUMERATE_LIMIT
        rows = _rows_holding(language, term, tags, limit=ENUMERATE_LIMIT + 1) if listable else []
        if not listable or len(rows) > ENUMERATE_LIMIT:
            rows = _ranked_rows(language, order[index:], tags, exclude=list(scores), limit=CANDIDATES, keep=keep)
            unread = 0.0
        for row in rows:
            if row.pk not in scores:
                scores[row.pk] = _score(row, query)
        unread -= weights[term]
        if unread <= 0:
            break
    return [(key, pk) for pk, key in scores.items()]


def _score(row: _Row, query: list[tuple[str, str | None, float]]) -> tuple:
    """(relevance, heading relevance, shortness, age): the order of passages, best last."""
    relevance = _coverage(query, row.terms.split())
    heading = _coverage(query, row.heading_terms.split())
    return (round(relevance, 4), round(heading, 4), -row.length, -row.pk)


def _coverage(query: list[tuple[str, str | None, float]], held: list[str]) -> float:
    """The share of the question's weight a passage's terms hold. `held` is sorted (stored so):
    the first term not before a question's term, or before its start, tells it all."""
    covered = 0.0
    for term, prefix, share in query:
        at = bisect_left(held, term)
        if at < len(held) and held[at] == term:
            covered += share
        elif prefix:
            at = bisect_left(held, prefix, hi=at)
            if at < len(held) and held[at].startswith(prefix):
                covered += share * _PARTIAL_MATCH
    return covered


def _hits(ranked: list[tuple[tuple, int]]) -> list[KnowledgeHit]:
    if not ranked:
        return []
    placeholders = ", ".join(["%s"] * len(ranked))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT knowledge_chunk.id, knowledge_chunk.article_id, knowledge_article.title,"  # noqa: S608 (values are parameters)
            " knowledge_chunk.heading, knowledge_chunk.text, knowledge_chunk.language, knowledge_article.url"
            " FROM knowledge_chunk JOIN knowledge_article ON knowledge_article.id = knowledge_chunk.article_id"
            f" WHERE knowledge_chunk.id IN ({placeholders})",
            [pk for _, pk in ranked],
        )
        rows = {row[0]: row for row in cursor.fetchall()}
    hits = []
    for key, pk in ranked:
        if pk in rows:  # else deleted since it was scored
            _, article_id, title, heading, text, language, url = rows[pk]
            hits.append(KnowledgeHit(pk, article_id, title, heading, text, language, url, relevance=key[0]))
    return hits


def _rows_holding(language: str, term: str, tags: Sequence[str], *, limit: int) -> list[_Row]:
    """Passages of a language holding the term (or a word it starts), in no order. The hot path
    of a search: plain SQL (the ORM would cost more than the query)."""
    sql, params = _matching(language, [term], tags, every=False)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_COLUMNS} {sql} LIMIT %s", [*params, limit])
        return [_Row(*row) for row in cursor.fetchall()]


def _ranked_rows(
    language: str, terms: list[str], tags: Sequence[str], *, exclude: list[int], limit: int, keep: int
) -> list[_Row]:
    """The database's own best passages among those holding the terms, which are too common to
    list: FTS5's bm25 on SQLite (the heading counting double), ts_rank on PostgreSQL. Those
    holding all of them first (they score the most, and are few to rank), then any of them.
    Each time only the first RANK_POOL passages the index gives are ranked: ranking reads every
    one (a word in 3,000 passages cost ~10 ms to rank, most of a search)."""
    rows: list[_Row] = []
    for every in (True, False) if len(terms) > 1 else (False,):
        sql, params = _matching(language, terms, tags, every=every)
        seen = exclude + [row.pk for row in rows]
        if seen and connection.vendor == "postgresql":
            sql += " AND NOT (knowledge_chunk.id = ANY(%s))"
            params.append(seen)
        elif seen:
            sql += " AND knowledge_chunk.id NOT IN (SELECT value FROM json_each(%s))"
            params.append(json.dumps(seen))
        if connection.vendor == "postgresql":
            score, order = "ts_rank(knowledge_chunk.search_vector, to_tsquery('simple', %s))", "score DESC"
            params.insert(0, _tsquery(terms, every=every))
        else:
            score, order = "bm25(knowledge_chunk_fts, 2.0, 1.0)", "score"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, terms, heading_terms, text_length FROM"  # noqa: S608 (values are parameters)
                f" (SELECT {_COLUMNS}, {score} AS score {sql} LIMIT %s) AS pool ORDER BY {order}, id LIMIT %s",
                [*params, RANK_POOL, limit - len(rows)],
            )
            rows += [_Row(*row) for row in cursor.fetchall()]
        if len(rows) >= keep:
            break
    return rows


# The passages of articles with any of the tags (a list on PostgreSQL, JSON on SQLite).
_TAGGED = (
    " AND knowledge_chunk.article_id IN (SELECT article_id FROM knowledge_article_tags JOIN knowledge_tag"
    " ON knowledge_tag.id = knowledge_article_tags.tag_id WHERE knowledge_tag.name {})"
)
_TAGS_ANY = {
    "postgresql": _TAGGED.format("= ANY(%s)"),
    "sqlite": _TAGGED.format("IN (SELECT value FROM json_each(%s))"),
}


def _matching(language: str, terms: list[str], tags: Sequence[str], *, every: bool) -> tuple[str, list]:
    """FROM and WHERE of the passages of a language holding all (`every`)
    or any of the terms, each also as the start of a longer word when _prefix gives it one."""
    if connection.vendor == "postgresql":
        # The language's own partial GIN index (migration 0001) holds only its passages. The
        # terms are stemmed and folded already (knowledge.text), as were the words of the
        # tsvector (services), so the query is not stemmed again: 'simple'.
        sql = (
            "FROM knowledge_chunk"
            " WHERE knowledge_chunk.language = %s AND knowledge_chunk.search_vector @@ to_tsquery('simple', %s)"
        )
        params: list = [language, _tsquery(terms, every=every)]
        if tags:
            sql += _TAGS_ANY["postgresql"]
            params.append(list(tags))
        return sql, params
    # The FTS5 table holds the terms knowledge.text makes, so they are matched as they are.
    match = (" AND " if every else " OR ").join(
        f'"{_prefix(term)}"*' if _prefix(term) else f'"{term}"' for term in terms
    )
    sql = (
        # CROSS JOIN keeps this order: the full-text match first, never a scan of the passages.
        "FROM knowledge_chunk_fts CROSS JOIN knowledge_chunk ON knowledge_chunk.id = knowledge_chunk_fts.rowid"
        " WHERE knowledge_chunk_fts MATCH %s AND knowledge_chunk.language = %s"
    )
    params = [match, language]
    if tags:
        sql += _TAGS_ANY["sqlite"]
        params.append(json.dumps(list(tags)))
    return sql, params


@contextmanager
def _index_scans() -> Iterator[None]:
    """On PostgreSQL, the searches' queries use the indexes, never a sequential scan. PostgreSQL
    estimates how common a word is over all languages at once: a stem frequent in Italian but in
    no English passage looks frequent in an English search, and the planner then scans the whole
    table to fill a LIMIT it never fills (~50 ms at 10,000 passages, against ~0.5 ms by the
    language's GIN index). Only this transaction's setting changes, and it is put back."""
    if connection.vendor != "postgresql":
        yield
        return
    is_nested = connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_seqscan'), set_config('enable_seqscan', 'off', true)")
        previous = cursor.fetchone()[0]
        yield
        if is_nested:  # otherwise the commit puts it back
            cursor.execute("SELECT set_config('enable_seqscan', %s, true)", [previous])


def _tsquery(terms: list[str], *, every: bool) -> str:
    # Terms are letters and digits only (knowledge.text), so quoting makes them plain operands.
    operands = [f"'{_prefix(term)}':*" if _prefix(term) else f"'{term}'" for term in terms]
    return (" & " if every else " | ").join(operands)
