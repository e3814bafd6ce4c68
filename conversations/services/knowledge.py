"""What the business's knowledge base gives a reply: passages, a search tool, sources for staff.

Each reply's input ends with the passages that best match the customer's new messages (above
KNOWLEDGE_MIN_RELEVANCE), each with its id; the model may search for more with the
`search_knowledge` tool and is told to answer only from them, to say it does not know
otherwise, and to cite the ids it used. The ids are taken out of the text before it is stored
and sent, and recorded on the bot message as its sources (for staff). With no OPENAI_API_KEY the
offline responder quotes the best passage instead, or says it does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from django.conf import settings

from conversations.ai import OFFLINE_LABEL, FunctionTool, ModelReply
from conversations.models import Message
from conversations.selectors.prompt import get_last_answered_message_id, list_customer_texts
from conversations.turns import Turn
from knowledge.selectors import (
    KnowledgeHit,
    get_articles_by_file_id,
    get_best_passage,
    has_knowledge,
    search_knowledge,
)
from knowledge.text import guess_language

_CITATIONS = re.compile(r"\s*\[\s*K\d+(?:\s*[,;]\s*K\d+)*\s*\]")
_CITED_ID = re.compile(r"K(\d+)")
_SEARCH_PARAMETERS = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "What to look for, in the customer's words and language."}
    },
    "required": ["query"],
    "additionalProperties": False,
}
# The offline responder's "I don't know", in the language of the question, naming a word that
# flags the conversation for a person (HUMAN_REQUEST_KEYWORDS).
_NO_ANSWER = {
    "en": ("agent", "I don't know the answer to that. Write “{keyword}” and a colleague will help you."),
    "it": ("operatore", "Non conosco la risposta. Scrivi “{keyword}” e un collega ti aiuterà."),
}


def knowledge_rules() -> str:
    person = (
        "offer to have a colleague help (call request_human if the customer wants a person)"
        if settings.BOT_DETECTS_HUMAN_REQUESTS
        else "offer to have a colleague help"
    )
    return (
        "Answer questions about the business (products, orders, shipping, returns, payment, opening "
        "hours, policies) only from the knowledge base passages you are given or find with the "
        "search_knowledge tool, and from these instructions. If they do not hold the answer, say "
        f"plainly that you do not know and {person}; never guess prices, times or rules. After your "
        "answer, write the ids of the passages you used in square brackets, like [K12] [K31]: they "
        "are removed before the customer reads it."
    )


@dataclass
class ReplyKnowledge:
    """The passages one reply may use: those given up front and those the model searched for.
    Inert while the knowledge base is empty: the bot answers from its instructions alone."""

    is_used: bool
    given: list[KnowledgeHit] = field(default_factory=list)
    found: dict[int, KnowledgeHit] = field(default_factory=dict)
    # The answering agent's knowledge tags: its searches keep to articles with one of them.
    tags: tuple[str, ...] = ()

    def instructions(self, instructions: str) -> str:
        return f"{instructions}\n\n{knowledge_rules()}" if self.is_used else instructions

    def with_passages(self, turns: list[Turn]) -> list[Turn]:
        """The turns followed by the given passages (a developer message: not the customer's words)."""
        if not self.is_used:
            return turns
        if not self.given:
            note = "No knowledge base passage matches the customer's new message."
            return [*turns, Turn(role="developer", text=note)]
        heading = "Knowledge base passages for this reply (cite the ones you use by their id):"
        return [*turns, Turn(role="developer", text=f"{heading}\n\n{_format(self.given)}")]

    @property
    def tools(self) -> list[FunctionTool]:
        if not self.is_used or not settings.KNOWLEDGE_SEARCH_TOOL:
            return []
        description = (
            "Search the business's knowledge base (shipping, returns, opening hours, payment, products…) for "
            "passages that answer a question. Use it when the passages you were given do not answer the "
            "customer: reword the question, or ask the follow-up. Returns passages with ids to cite."
        )
        return [FunctionTool("search_knowledge", description, _SEARCH_PARAMETERS, self._search)]

    def _search(self, arguments: dict) -> str:
        query = str(arguments.get("query", ""))
        hits = search_knowledge(query, limit=settings.KNOWLEDGE_CONTEXT_PASSAGES, tags=self.tags)
        self.found.update((hit.chunk_id, hit) for hit in hits)
        return _format(hits) if hits else "No passage of the knowledge base matches."

    def attach_sources(self, answer: ModelReply) -> ModelReply:
        """The answer without its citation marks, with the passages it cites (or, when it cites
        none, those it was given) as its sources, and their links when KNOWLEDGE_SOURCE_LINKS."""
        if not self.is_used:
            return answer
        offered = {hit.chunk_id: hit for hit in self.given} | self.found
        cited_ids = [int(number) for mark in _CITATIONS.findall(answer.text) for number in _CITED_ID.findall(mark)]
        cited = [offered[chunk_id] for chunk_id in dict.fromkeys(cited_ids) if chunk_id in offered]
        if cited:
            sources = [{**hit.source, "cited": True} for hit in cited]
        else:
            sources = [{**hit.source, "cited": False} for hit in offered.values()]
        sources += _file_sources(answer.cited_file_ids)
        text = _CITATIONS.sub("", answer.text).strip()
        links = [source["url"] for source in sources if source["cited"] and source.get("url")]
        if settings.KNOWLEDGE_SOURCE_LINKS and links and text:
            text += "\n\n" + "\n".join(dict.fromkeys(links))
        return replace(answer, text=text, sources=tuple(sources))


def gather_for_reply(*, inbound: Message, tags: tuple[str, ...] = ()) -> ReplyKnowledge:
    """The passages for the reply to `inbound` (none, and no rules, while the knowledge base is
    empty), from articles with one of `tags` when given."""
    if not has_knowledge() and not settings.KNOWLEDGE_VECTOR_STORE_ID:
        return ReplyKnowledge(is_used=False)
    question = _question(inbound)
    hits = search_knowledge(question, limit=settings.KNOWLEDGE_CONTEXT_PASSAGES, tags=tags) if question else []
    return ReplyKnowledge(is_used=True, given=hits, tags=tags)


def offline_answer(*, inbound: Message) -> ModelReply:
    """The offline responder: the best passage for the customer's new messages, or "I don't know"."""
    question = _question(inbound)
    hits = (
        search_knowledge(question, limit=1, min_relevance=settings.KNOWLEDGE_OFFLINE_MIN_RELEVANCE) if question else []
    )
    if hits:
        hit = hits[0]
        passage = get_best_passage(query=question, hit=hit)
        text = f"{OFFLINE_LABEL} **{hit.heading or hit.title}**\n{passage}"
        return ModelReply(text=text, model="offline", sources=({**hit.source, "cited": True},))
    language = guess_language(question, among=list(_NO_ANSWER)) or settings.KNOWLEDGE_DEFAULT_LANGUAGE
    keyword, sentence = _NO_ANSWER.get(language, _NO_ANSWER["en"])
    keywords = [word.lower() for word in settings.HUMAN_REQUEST_KEYWORDS]
    if keyword not in keywords and keywords:
        keyword = keywords[0]
    return ModelReply(text=f"{OFFLINE_LABEL} {sentence.format(keyword=keyword)}", model="offline")


def _question(inbound: Message) -> str:
    """The customer's messages not answered yet (a burst is answered as one)."""
    after = get_last_answered_message_id(conversation_id=inbound.conversation_id)
    return "\n".join(list_customer_texts(message=inbound, after_id=after)) or inbound.text


def _format(hits: list[KnowledgeHit]) -> str:
    return "\n\n".join(f"[{hit.label}] {hit.title} > {hit.heading or hit.title}\n{hit.text}" for hit in hits)


def _file_sources(file_ids: tuple[str, ...]) -> list[dict]:
    """file_search citations: whole articles (the vector store holds one file per article)."""
    if not file_ids:
        return []
    articles = get_articles_by_file_id(file_ids=file_ids)
    return [
        {
            "chunk_id": None,
            "article_id": article.pk,
            "title": article.title,
            "heading": "",
            "url": article.url,
            "cited": True,
        }
        for file_id in file_ids
        if (article := articles.get(file_id))
    ]
