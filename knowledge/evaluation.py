"""Answer quality: an evaluation set of customer questions and the measures of `eval_knowledge`.

A question either names the article(s) it should be answered from, or none: then the knowledge
base does not hold the answer and the right outcome is to abstain ("I don't know"). An outcome
lists the articles a reply used, best first; none means it abstained.

- hit@k: among answerable questions, the share whose first k articles include a right one;
- abstention precision: among the questions answered with "I don't know", the share that were
  unanswerable (a low one means good answers are withheld);
- abstention recall: among unanswerable questions, the share that got "I don't know".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from knowledge.models import Article
from knowledge.selectors import search_knowledge


@dataclass(frozen=True)
class EvalQuestion:
    text: str
    articles: tuple[str, ...]  # slugs of the articles that answer it; () when none does

    @property
    def is_answerable(self) -> bool:
        return bool(self.articles)


@dataclass(frozen=True)
class EvalOutcome:
    question: EvalQuestion
    used: tuple[str, ...]  # slugs of the articles the reply used, best first; () = abstained
    input_tokens: int = 0
    output_tokens: int = 0

    def hit_at(self, k: int) -> bool:
        return bool(set(self.used[:k]) & set(self.question.articles))


@dataclass(frozen=True)
class EvalReport:
    questions: int
    answerable: int
    hit_at_1: float
    hit_at_3: float
    abstentions: int
    abstention_precision: float | None  # None when nothing was abstained on
    abstention_recall: float | None  # None when every question is answerable
    input_tokens: int
    output_tokens: int


def load_eval_set(path: Path | str) -> list[EvalQuestion]:
    """Questions from a YAML or JSON file: {questions: [{q: …, article: slug | [slugs] | null}]}."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))  # JSON is YAML too
    entries = data["questions"] if isinstance(data, dict) else data
    questions = []
    for entry in entries:
        articles = entry.get("article") or entry.get("articles") or ()
        if isinstance(articles, str):
            articles = (articles,)
        questions.append(EvalQuestion(text=str(entry["q"]), articles=tuple(articles)))
    return questions


def evaluate_retrieval(
    questions: Sequence[EvalQuestion], *, passages: int, min_relevance: float | None = None
) -> list[EvalOutcome]:
    """Retrieval alone: the articles of the passages a reply would be given, best first (the
    first `passages` count for tokens, and all of them for hit@k when `passages` is above 1).
    No model tokens are spent; the input tokens are those the passages add (≈ 4 characters a
    token)."""
    slugs = dict(Article.objects.values_list("pk", "slug"))
    outcomes = []
    for question in questions:
        hits = search_knowledge(
            question.text, limit=max(passages, 10) if passages > 1 else 1, min_relevance=min_relevance
        )
        used = tuple(dict.fromkeys(slugs[hit.article_id] for hit in hits))
        tokens = sum(len(hit.heading) + len(hit.text) for hit in hits[:passages]) // 4
        outcomes.append(EvalOutcome(question=question, used=used, input_tokens=tokens))
    return outcomes


def summarize(outcomes: Sequence[EvalOutcome]) -> EvalReport:
    answerable = [outcome for outcome in outcomes if outcome.question.is_answerable]
    unanswerable = [outcome for outcome in outcomes if not outcome.question.is_answerable]
    abstained = [outcome for outcome in outcomes if not outcome.used]
    return EvalReport(
        questions=len(outcomes),
        answerable=len(answerable),
        hit_at_1=_share(answerable, lambda outcome: outcome.hit_at(1)) or 0.0,
        hit_at_3=_share(answerable, lambda outcome: outcome.hit_at(3)) or 0.0,
        abstentions=len(abstained),
        abstention_precision=_share(abstained, lambda outcome: not outcome.question.is_answerable),
        abstention_recall=_share(unanswerable, lambda outcome: not outcome.used),
        input_tokens=sum(outcome.input_tokens for outcome in outcomes),
        output_tokens=sum(outcome.output_tokens for outcome in outcomes),
    )


def _share(outcomes: Sequence[EvalOutcome], test: Callable[[EvalOutcome], bool]) -> float | None:
    if not outcomes:
        return None
    return sum(1 for outcome in outcomes if test(outcome)) / len(outcomes)
