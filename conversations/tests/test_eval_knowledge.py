"""`manage.py eval_knowledge` against the model: each question through reply_to_message, with the
fake OpenAI at the HTTP boundary; nothing is sent and nothing is kept."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from conversations.models import Message
from knowledge.models import Chunk
from knowledge.services import load_demo_knowledge
from profiles.models import ClientProfile

pytestmark = pytest.mark.django_db

EVAL_SET = """questions:
  - {q: "How long does shipping to Italy take?", article: shipping-en}
  - {q: "Can I pay with PayPal?", article: orders-en}  # expects another article: a miss
  - {q: "Are your teas organic?", article: null}
"""


def test_the_model_is_asked_each_question_and_its_citations_are_scored(fake_openai, tmp_path):
    load_demo_knowledge()
    italy = Chunk.objects.get(article__slug="shipping-en", heading="Delivery times in Italy")
    methods = Chunk.objects.get(article__slug="payment-en", heading="Accepted payment methods")
    fake_openai.answer(f"1 to 2 working days. [K{italy.pk}]", input_tokens=300, output_tokens=20)
    fake_openai.answer(f"Yes, PayPal too. [K{methods.pk}]", input_tokens=280, output_tokens=10)
    fake_openai.answer("I don't know; a colleague can tell you.", input_tokens=250, output_tokens=12)
    path = tmp_path / "set.yaml"
    path.write_text(EVAL_SET)
    out = StringIO()

    call_command("eval_knowledge", str(path), stdout=out)

    assert len(fake_openai.requests) == 3
    report = out.getvalue()
    assert "model gpt-test" in report
    assert "hit@1                 0.500" in report
    assert "abstention precision  1.000 (1 abstentions)" in report
    assert "tokens                830 input, 42 output" in report
    # Rolled back: no conversation, message or profile is left, so nothing was sent either.
    assert not Message.objects.exists() and not ClientProfile.objects.exists()


def test_without_a_key_only_retrieval_can_be_evaluated(settings, tmp_path):
    settings.OPENAI_API_KEY = ""
    path = tmp_path / "set.yaml"
    path.write_text(EVAL_SET)
    with pytest.raises(CommandError, match="--retrieval"):
        call_command("eval_knowledge", str(path))
