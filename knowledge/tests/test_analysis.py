from __future__ import annotations

from knowledge.chunking import split_into_passages
from knowledge.text import analyze, analyze_query, guess_language


def test_it_stems_drops_stop_words_and_folds_accents():
    assert analyze("How long does shipping to Italy take?", language="en") == ["long", "ship", "itali", "take"]
    assert analyze("Le spedizioni in città", language="it") == ["spedizion", "citt"]
    assert analyze("Citta", language="it") == analyze("città", language="it")


def test_a_question_keeps_each_term_once_and_leaves_numbers_out():
    terms = analyze_query("Order 1042: shipping, shipped, ships?", language="en")
    assert [(term.word, term.term) for term in terms] == [("order", "order"), ("shipping", "ship")]


def test_greetings_and_polite_words_are_not_terms():
    assert analyze("Hi! Could you please tell me", language="en") == []
    assert analyze("Ciao, vorrei sapere per favore", language="it") == []


def test_the_language_of_a_question_is_guessed_from_its_stop_words():
    assert guess_language("Where is the shop?", among=["en", "it"]) == "en"
    assert guess_language("Dove si trova il negozio?", among=["en", "it"]) == "it"
    assert guess_language("PayPal?", among=["en", "it"]) is None


def test_each_section_is_a_passage_named_by_its_heading():
    body = "Intro text.\n\n## Costs\nFree over 50.\n\n### Islands\nOne more day.\n\n## Tracking\nBy email."
    passages = split_into_passages(body)
    assert [(passage.heading, passage.text) for passage in passages] == [
        ("", "Intro text."),
        ("Costs", "Free over 50."),
        ("Costs > Islands", "One more day."),
        ("Tracking", "By email."),
    ]


def test_a_long_section_is_cut_between_paragraphs_and_headings_in_code_are_not_headings():
    paragraph = "A sentence about delivery times. " * 20
    body = f"## Long\n{paragraph}\n\n{paragraph}\n\n```\n# not a heading\n```"
    passages = split_into_passages(body, max_chars=800)
    assert [passage.heading for passage in passages] == ["Long", "Long"]
    assert all(len(passage.text) <= 800 for passage in passages)
    assert "# not a heading" in passages[-1].text


def test_a_hard_wrapped_paragraph_reads_as_one_line_but_lists_keep_theirs():
    [passage] = split_into_passages(
        "## Hours\nWe open at ten\nand close at seven.\n\n- Monday: closed\n- Sunday: 11-18"
    )
    assert passage.text == "We open at ten and close at seven.\n\n- Monday: closed\n- Sunday: 11-18"
