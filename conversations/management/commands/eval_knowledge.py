"""manage.py eval_knowledge FILE: how well the bot answers from the knowledge base.

It lives in conversations, not knowledge, because it drives the real reply pipeline (the
knowledge app sits below conversations and cannot import it).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test.utils import setup_databases, teardown_databases
from django.utils import timezone

from conversations.ai import is_offline
from conversations.models import Channel, Conversation, Message, Provider
from conversations.services.replies import reply_to_message
from conversations.services.retries import RetryLater
from knowledge.evaluation import EvalOutcome, EvalQuestion, evaluate_retrieval, load_eval_set, summarize
from knowledge.models import Article
from knowledge.services import load_demo_knowledge
from profiles.models import ClientProfile, Contact


class Command(BaseCommand):
    help = (
        "Run an evaluation set (YAML or JSON: questions, each with the article that should answer it, or none "
        "when the bot must say it does not know) through the reply pipeline, and print hit@1, hit@3, abstention "
        "precision and recall, and the tokens spent. With the configured model by default (it costs tokens; "
        "nothing is sent to anyone and nothing is kept), or retrieval only with --retrieval."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="The evaluation set, e.g. knowledge/eval/demo.yaml.")
        parser.add_argument(
            "--retrieval",
            action="store_true",
            help="Retrieval only: the articles of the passages a reply would be given (no model call, no cost).",
        )
        parser.add_argument(
            "--offline",
            action="store_true",
            help="The offline responder (no OPENAI_API_KEY): its one passage, above KNOWLEDGE_OFFLINE_MIN_RELEVANCE.",
        )
        parser.add_argument(
            "--demo-database",
            action="store_true",
            help="Run in a throwaway database (Django's test database: in memory on SQLite) holding only the demo "
            "knowledge base, instead of the configured one. For CI.",
        )
        parser.add_argument(
            "--fail-under",
            type=float,
            help="Exit with status 1 when hit@3 or abstention precision is below this (e.g. 0.9).",
        )
        parser.add_argument("--json", type=Path, help="Also write each question's outcome to this JSON file.")

    def handle(
        self,
        *args,
        file: Path,
        retrieval: bool,
        offline: bool,
        demo_database: bool,
        fail_under: float | None,
        **options,
    ):
        if not file.exists():
            raise CommandError(f"{file} does not exist.")
        if not (retrieval or offline) and is_offline():
            raise CommandError("OPENAI_API_KEY is unset: set it to evaluate the model, or pass --retrieval.")
        questions = load_eval_set(file)
        old_config = self._use_demo_database() if demo_database else None
        try:
            if demo_database:
                load_demo_knowledge()
            if offline:
                outcomes = evaluate_retrieval(
                    questions, passages=1, min_relevance=settings.KNOWLEDGE_OFFLINE_MIN_RELEVANCE
                )
            elif retrieval:
                outcomes = evaluate_retrieval(questions, passages=settings.KNOWLEDGE_CONTEXT_PASSAGES)
            else:
                outcomes = [self._ask(question) for question in questions]
        finally:
            if old_config is not None:
                teardown_databases(old_config, verbosity=0)
        report = summarize(outcomes)
        if options["verbosity"] >= 2:
            for outcome in outcomes:
                self._print_outcome(outcome)
        if offline:
            mode = f"offline responder, KNOWLEDGE_OFFLINE_MIN_RELEVANCE={settings.KNOWLEDGE_OFFLINE_MIN_RELEVANCE}"
        elif retrieval:
            mode = f"retrieval only, KNOWLEDGE_MIN_RELEVANCE={settings.KNOWLEDGE_MIN_RELEVANCE}"
        else:
            mode = f"model {settings.OPENAI_MODEL}, KNOWLEDGE_MIN_RELEVANCE={settings.KNOWLEDGE_MIN_RELEVANCE}"
        precision = report.abstention_precision
        recall = report.abstention_recall
        tokens = (
            f"≈ {report.input_tokens} input (the passages given), no model call"
            if retrieval or offline
            else f"{report.input_tokens} input, {report.output_tokens} output"
        )
        self.stdout.write(
            "\n".join(
                [
                    f"eval_knowledge {file}: {mode}, {connection.vendor} "
                    f"({report.questions} questions, {report.answerable} answerable)",
                    f"  hit@1                 {report.hit_at_1:.3f}",
                    f"  hit@3                 {report.hit_at_3:.3f}",
                    f"  abstention precision  {_number(precision)} ({report.abstentions} abstentions)",
                    f"  abstention recall     {_number(recall)}",
                    f"  tokens                {tokens}",
                ]
            )
        )
        if options["json"]:
            rows = [
                {"q": o.question.text, "expected": list(o.question.articles), "used": list(o.used)} for o in outcomes
            ]
            options["json"].write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
        if fail_under is not None and (report.hit_at_3 < fail_under or (precision or 0.0) < fail_under):
            raise CommandError(f"hit@3 or abstention precision is below {fail_under}.")

    def _use_demo_database(self):
        if connection.vendor != "sqlite":
            # Beside, never over, a test database a test run may be using.
            connection.settings_dict.setdefault("TEST", {})["NAME"] = f"test_{connection.settings_dict['NAME']}_eval"
        return setup_databases(verbosity=0, interactive=False, aliases={"default"})

    def _ask(self, question: EvalQuestion) -> EvalOutcome:
        """One question through reply_to_message, as a web chat visitor's message, in a
        transaction rolled back afterwards: nothing is sent and nothing is kept."""
        slugs = dict(Article.objects.values_list("pk", "slug"))
        with transaction.atomic():
            profile = ClientProfile.objects.create(
                contact=Contact.objects.create(), provider=Provider.WEBCHAT, external_id=f"eval.{uuid.uuid4().hex}"
            )
            conversation = Conversation.objects.create(
                profile=profile,
                channel=Channel.WEBCHAT,
                business_address="web",
                last_customer_message_at=timezone.now(),
            )
            inbound = Message.objects.create(
                conversation=conversation,
                direction=Message.Direction.INBOUND,
                author=Message.Author.CUSTOMER,
                provider=Provider.WEBCHAT,
                text=question.text,
                status=Message.Status.RECEIVED,
            )
            try:
                reply = reply_to_message(message_id=inbound.pk, attempt=settings.OPENAI_MAX_ATTEMPTS)
            except RetryLater:
                reply = None
            transaction.set_rollback(True)
        if reply is None or not reply.model:
            self.stderr.write(f"No model answer for: {question.text}")
            return EvalOutcome(question=question, used=())
        cited = [source["article_id"] for source in reply.knowledge_sources if source.get("cited")]
        used = tuple(dict.fromkeys(slugs[article_id] for article_id in cited if article_id in slugs))
        return EvalOutcome(
            question=question, used=used, input_tokens=reply.input_tokens or 0, output_tokens=reply.output_tokens or 0
        )

    def _print_outcome(self, outcome: EvalOutcome) -> None:
        expected = ", ".join(outcome.question.articles) or "(don't know)"
        used = ", ".join(outcome.used[:3]) or "(don't know)"
        mark = "ok " if (outcome.hit_at(3) if outcome.question.is_answerable else not outcome.used) else "MISS"
        self.stdout.write(f"{mark} {outcome.question.text}\n     expected {expected}; got {used}")


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
