"""Markdown to WhatsApp and SMS, and splitting to the channel limits, on nasty inputs."""

import pytest

from conversations.formatting import format_for_channel, split_text, to_plain_text, to_whatsapp
from conversations.models import Channel


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_it_converts_bold_italic_and_strikethrough_to_whatsapp_marks():
    assert to_whatsapp("**bold**, *italic*, _also italic_ and ~~gone~~") == "*bold*, _italic_, _also italic_ and ~gone~"


def test_it_nests_emphasis_the_way_whatsapp_reads_it():
    assert to_whatsapp("***both***") == "_*both*_"
    assert to_whatsapp("**bold with _italic_ inside**") == "*bold with _italic_ inside*"
    assert to_whatsapp("*italic with **bold** inside*") == "_italic with *bold* inside_"


def test_it_keeps_marks_touching_the_words():
    assert to_whatsapp("** spaced **") == "** spaced **"  # not emphasis in Markdown either
    assert to_whatsapp("**bold **text") == "**bold **text"


def test_code_is_monospace_and_markdown_inside_it_is_left_alone():
    assert to_whatsapp("run `rm **x**` now") == "run ```rm **x**``` now"
    fenced = to_whatsapp("Try:\n\n```python\nprint('**hi**')\n```")
    assert fenced == "Try:\n\n```\nprint('**hi**')\n```"


def test_lists_headings_quotes_and_links_become_whatsapp_text():
    markdown = "# Opening hours\n\n- Mon: **9-18**\n- Sat: closed\n\n1. first\n2. second\n\n> note\n\n[Map](https://maps.example/x)"
    assert to_whatsapp(markdown) == (
        "*Opening hours*\n\n- Mon: *9-18*\n- Sat: closed\n\n1. first\n2. second\n\n> note\n\nMap (https://maps.example/x)"
    )


def test_a_link_whose_text_is_its_url_is_written_once():
    assert to_whatsapp("See <https://example.com> or [https://example.com](https://example.com)") == (
        "See https://example.com or https://example.com"
    )


def test_sms_gets_plain_text_without_marks_and_with_gsm_punctuation():
    markdown = "**Hi** “there” — see _this_:\n\n- `code`\n- [link](https://x.example)"
    assert to_plain_text(markdown) == 'Hi "there" - see this:\n\n- code\n- link (https://x.example)'


def test_emoji_and_rtl_text_pass_through_untouched():
    text = "مرحبا **بك** 👋🏽 שלום 👨‍👩‍👧"
    assert to_whatsapp(text) == "مرحبا *بك* 👋🏽 שלום 👨‍👩‍👧"
    assert to_plain_text(text) == "مرحبا بك 👋🏽 שלום 👨‍👩‍👧"


def test_a_4100_character_reply_without_spaces_is_cut_hard_and_nothing_is_lost():
    text = "x" * 4100

    parts = format_for_channel(text, channel=Channel.META_WHATSAPP)

    assert [len(part) for part in parts] == [4096, 4]
    assert "".join(parts) == text


def test_a_hard_cut_never_splits_an_emoji():
    text = "👍" * 2100  # 2 UTF-16 units each: 4200 units

    parts = split_text(text, limit=4096)

    assert all(utf16(part) <= 4096 for part in parts)
    assert "".join(parts) == text
    assert all(not ("\ud800" <= part[-1] <= "\udfff") for part in parts)


def test_a_hard_cut_keeps_an_emoji_sequence_together():
    family = "👨‍👩‍👧"  # man ZWJ woman ZWJ girl
    text = "a" * 1597 + family

    first, second = split_text(text, limit=1600)

    assert first == "a" * 1597
    assert second == family


def test_long_replies_split_at_paragraphs_first():
    paragraphs = ["First paragraph. " * 60, "Second paragraph. " * 60, "Third. " * 120]
    text = "\n\n".join(p.strip() for p in paragraphs)

    parts = split_text(text, limit=1600)

    assert parts[0] == paragraphs[0].strip()
    assert parts[1] == paragraphs[1].strip()
    assert all(utf16(part) <= 1600 for part in parts)


def test_without_paragraphs_it_splits_at_a_sentence_end_never_mid_word():
    text = " ".join(f"Sentence number {i} is here." for i in range(200))

    parts = split_text(text, limit=1600)

    assert len(parts) > 1
    assert all(part.endswith(".") for part in parts)
    assert " ".join(parts) == text


def test_a_single_long_sentence_splits_between_words():
    words = [f"word{i}" for i in range(500)]
    text = " ".join(words)

    parts = split_text(text, limit=1600)

    assert all(utf16(part) <= 1600 for part in parts)
    assert " ".join(parts).split() == words


@pytest.mark.parametrize(
    ("channel", "limit"),
    [(Channel.META_WHATSAPP, 4096), (Channel.TWILIO_WHATSAPP, 1600), (Channel.TWILIO_SMS, 1600)],
)
def test_each_channel_has_its_limit(channel, limit):
    text = "word " * 2000

    parts = format_for_channel(text, channel=channel)

    assert all(utf16(part) <= limit for part in parts)
    assert utf16(parts[0]) > limit - 10


def test_staff_text_is_sent_as_typed_on_whatsapp():
    assert format_for_channel("*already bold* _x_", channel=Channel.META_WHATSAPP, is_markdown=False) == [
        "*already bold* _x_"
    ]
