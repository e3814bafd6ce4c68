"""Budgets: replies per minute (a sliding minute) and tokens per day for each contact, whichever
channels the person writes on, a monthly spend cap from the price table; one notice, a flag for
staff, nothing more spent, and limits that reset by themselves."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from conversations.ai import ModelReply
from conversations.models import AuditEntry, Channel, Conversation, Message, ModelUsage, UsageWindow
from conversations.services import budgets
from conversations.services.budgets import LIMIT_NOTICE
from conversations.services.contacts import merge_contacts
from conversations.services.usage import get_month_spend, record_model_usage
from conversations.tests.helpers import meta_text, post_meta, post_twilio, twilio_params
from profiles.models import ClientProfile, Contact
from telemetry.prices import price_of

pytestmark = pytest.mark.django_db

ALICE, BOB = "15550000001", "15550000002"


def write(client, text: str, wamid: str, wa_id: str = ALICE) -> None:
    post_meta(client, meta_text(text, wamid, wa_id=wa_id, user_id=f"US.{wa_id}"))


def bot_texts(wa_id: str) -> list[str]:
    return list(
        Message.objects.filter(author=Message.Author.BOT, conversation__profile__phone_number__endswith=wa_id)
        .order_by("id")
        .values_list("text", flat=True)
    )


def model_calls_for(fake_openai, text_prefix: str) -> int:
    return sum(1 for request in fake_openai.requests if request["input"][-1]["content"].startswith(text_prefix))


def test_a_contact_over_its_replies_per_minute_gets_one_notice_and_costs_nothing_more(
    client, graph_ok, fake_openai, settings, monkeypatch
):
    settings.BUDGET_REPLIES_PER_MINUTE = 2
    # One instant for all of it: the limit counts the last minute, and a slow machine may take one.
    now = timezone.now()
    monkeypatch.setattr(budgets, "clock", lambda: now)
    for number in range(6):
        write(client, f"alice {number}", f"wamid.f{number}")
    write(client, "bob here", "wamid.bob", wa_id=BOB)

    assert model_calls_for(fake_openai, "alice") == 2
    assert bot_texts(ALICE) == ["Hello! How can I help?"] * 2 + [LIMIT_NOTICE]
    assert bot_texts(BOB) == ["Hello! How can I help?"]
    conversation = Conversation.objects.get(profile__phone_number__endswith=ALICE)
    assert conversation.needs_human
    assert AuditEntry.objects.filter(action="conversation.limit_reached", conversation=conversation).count() == 1
    assert not Message.objects.filter(direction=Message.Direction.INBOUND, status=Message.Status.RECEIVED).exists()


def test_the_reply_rate_resets_by_itself(client, graph_ok, fake_openai, settings, monkeypatch):
    settings.BUDGET_REPLIES_PER_MINUTE = 1
    write(client, "alice 1", "wamid.r1")
    write(client, "alice 2", "wamid.r2")
    assert bot_texts(ALICE)[-1] == LIMIT_NOTICE

    later = timezone.now() + timedelta(minutes=1)
    monkeypatch.setattr(budgets, "clock", lambda: later)
    write(client, "alice 3", "wamid.r3")

    assert model_calls_for(fake_openai, "alice") == 2
    assert bot_texts(ALICE)[-1] == "Hello! How can I help?"


def test_the_reply_rate_counts_the_last_minute_not_the_clock_minute(
    client, graph_ok, fake_openai, settings, monkeypatch
):
    settings.BUDGET_REPLIES_PER_MINUTE = 2
    minute = timezone.now().replace(second=0, microsecond=0)
    clock = {"now": minute + timedelta(seconds=50)}
    monkeypatch.setattr(budgets, "clock", lambda: clock["now"])
    write(client, "alice 1", "wamid.w1")
    write(client, "alice 2", "wamid.w2")
    clock["now"] = minute + timedelta(seconds=70)  # the next clock minute, 20 s later
    write(client, "alice 3", "wamid.w3")
    clock["now"] = minute + timedelta(seconds=111)  # 61 s after the first two
    write(client, "alice 4", "wamid.w4")

    assert model_calls_for(fake_openai, "alice") == 3
    assert bot_texts(ALICE) == ["Hello! How can I help?"] * 2 + [LIMIT_NOTICE, "Hello! How can I help?"]


def test_a_person_writing_on_two_channels_has_one_budget(
    client, graph_ok, twilio_ok, fake_openai, settings, monkeypatch
):
    settings.BUDGET_REPLIES_PER_MINUTE = 2
    now = timezone.now()
    monkeypatch.setattr(budgets, "clock", lambda: now)
    write(client, "alice on whatsapp 1", "wamid.c1")
    write(client, "alice on whatsapp 2", "wamid.c2")
    sid = "SM" + "c" * 32
    sms = {"From": f"+{ALICE}", "Body": "alice by sms", "MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid}
    post_twilio(client, {**twilio_params("sms_inbound"), **sms})

    identities = ClientProfile.objects.filter(phone_number__endswith=ALICE)
    assert identities.count() == 2
    assert len({identity.contact_id for identity in identities}) == 1  # one person, joined by number
    assert model_calls_for(fake_openai, "alice") == 2
    by_sms = Conversation.objects.get(channel=Channel.TWILIO_SMS)
    assert list(by_sms.messages.filter(author=Message.Author.BOT).values_list("text", flat=True)) == [LIMIT_NOTICE]


def test_contacts_merged_keep_what_both_used(settings):
    ada, also_ada = Contact.objects.create(), Contact.objects.create()
    day = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    UsageWindow.objects.create(contact=ada, kind=UsageWindow.Kind.TOKENS, starts_at=day, count=100)
    UsageWindow.objects.create(contact=also_ada, kind=UsageWindow.Kind.TOKENS, starts_at=day, count=200)
    UsageWindow.objects.create(contact=also_ada, kind=UsageWindow.Kind.NOTICE_TOKENS, starts_at=day, count=1)
    UsageWindow.objects.create(contact=also_ada, kind=UsageWindow.Kind.REPLIES, starts_at=timezone.now(), count=1)
    UsageWindow.objects.create(contact=ada, kind=UsageWindow.Kind.NOTICE_REPLIES, starts_at=day, count=1)  # only hers

    merge_contacts(target_id=ada.pk, source_id=also_ada.pk, user=None)

    counts = {window.kind: window.count for window in UsageWindow.objects.filter(contact=ada)}
    assert counts == {"tokens": 300, "notice_tokens": 1, "replies": 1, "notice_replies": 1}
    assert UsageWindow.objects.count() == 4


def test_a_contact_over_its_tokens_of_the_day_is_not_sent_to_the_model(client, graph_ok, fake_openai, settings):
    settings.BUDGET_TOKENS_PER_DAY = 60  # a reply costs 42 + 7 tokens
    for number in range(4):
        write(client, f"alice {number}", f"wamid.d{number}")

    assert model_calls_for(fake_openai, "alice") == 2  # 49 < 60 allows the second, 98 stops the third
    assert bot_texts(ALICE)[-1] == LIMIT_NOTICE
    assert bot_texts(ALICE).count(LIMIT_NOTICE) == 1


def test_the_spend_cap_stops_model_calls_once_the_month_reaches_it(
    client, graph_ok, fake_openai, settings, admin_client
):
    settings.MODEL_PRICES = {"gpt-test": {"input": 1000, "cached_input": 100, "output": 4000}}
    settings.MODEL_PRICE_CURRENCY = "EUR"
    one_reply = Decimal("0.070000")  # (42 x 1000 + 7 x 4000) / 1e6
    settings.BUDGET_MONTHLY_SPEND_CAP = Decimal("0.10")
    write(client, "alice 1", "wamid.s1")
    write(client, "alice 2", "wamid.s2")
    write(client, "alice 3", "wamid.s3")
    write(client, "bob 1", "wamid.s4", wa_id=BOB)

    assert model_calls_for(fake_openai, "alice") == 2  # 0.07, then 0.14 ≥ 0.10
    assert model_calls_for(fake_openai, "bob") == 0
    assert get_month_spend() == 2 * one_reply
    assert bot_texts(BOB) == [LIMIT_NOTICE]
    costs = list(Message.objects.filter(author=Message.Author.BOT, model="gpt-test").values_list("cost", flat=True))
    assert costs == [one_reply, one_reply]

    page = admin_client.get("/admin/conversations/conversation/").content.decode()
    assert "Model cost this month: 0.14 EUR of a 0.10 cap" in page


def test_a_price_counts_cached_input_apart_and_a_dated_model_takes_its_prefix(settings):
    settings.MODEL_PRICES = {
        "gpt-5": {"input": 2, "output": 10},
        "gpt-5-mini": {"input": 1, "cached_input": 0.1, "output": 4},
    }

    cost = price_of(model="gpt-5-mini-2025-08-07", input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=0)

    assert cost == Decimal("0.640000")  # 600k x 1 + 400k x 0.1, per million
    assert price_of(model="gpt-4o", input_tokens=10, cached_input_tokens=0, output_tokens=10) is None


def test_discarded_replies_and_summaries_count_toward_the_spend(client, graph_ok, fake_openai, settings):
    settings.MODEL_PRICES = {"gpt-test": {"input": 1000, "output": 4000}}
    write(client, "alice 1", "wamid.u1")
    message = Message.objects.get(text="alice 1")

    usage = record_model_usage(
        message=message,
        purpose=ModelUsage.Purpose.SUMMARY,
        answer=ModelReply(text="", model="gpt-test", input_tokens=1000, output_tokens=0),
    )

    assert usage.cost == Decimal("1.000000")
    assert get_month_spend() == Decimal("1.070000")
