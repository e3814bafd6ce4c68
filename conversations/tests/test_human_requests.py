"""Recognising a customer who asks for a person: the simulator's button, common phrasings in the
supported languages, keywords in short messages, and the model's request_human tool."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from conversations.models import AuditEntry, Conversation
from conversations.providers import simulator
from conversations.services.handoff import HUMAN_COMING_REPLY, is_request_for_human
from conversations.tests.fakes import GRAPH_MESSAGES

from .helpers import meta_body, meta_text, post_meta

ASKING = [
    # English
    "Talk to a person",
    "Can I talk to a real person about my order please, it has been three weeks?",
    "I'd like to speak with someone from your staff",
    "connect me to a human",
    "is there a live agent?",
    "person",
    "AGENT!!",
    # Italian
    "Vorrei parlare con un operatore, il pacco non è arrivato e nessuno mi risponde",
    "posso parlare con qualcuno?",
    "c'è una persona vera?",
    # Spanish
    "Quiero hablar con una persona, por favor",
    "¿Puedo hablar con un agente sobre mi pedido de la semana pasada?",
    # French
    "Je voudrais parler à quelqu\u2019un de votre équipe",
    "Puis-je parler avec un conseiller ?",
    # German
    "Kann ich mit einem Mitarbeiter sprechen?",
    "Ich möchte bitte mit einem echten Menschen reden",
    # Portuguese
    "Quero falar com um atendente",
    "posso falar com alguém sobre a minha encomenda que não chegou?",
    # Dutch
    "Kan ik met een medewerker spreken?",
    "Ik wil graag praten met iemand van de klantenservice",
]

NOT_ASKING = [
    "How much does the tour cost per person?",
    "A table for 2 person",
    "Quanto costa la visita guidata per persona, con la guida in inglese?",
    "Do you ship to Germany?",
    "I talked to a friend and she recommends your green tea, do you have it in 100 g bags?",
    "My agent number is 1234 and my order has not arrived yet, can you check the tracking for me?",
    "",
]


@pytest.mark.parametrize("text", ASKING)
def test_common_requests_for_a_person_are_recognised(text):
    assert is_request_for_human(text=text) is True


@pytest.mark.parametrize("text", NOT_ASKING)
def test_questions_that_merely_mention_people_are_not(text):
    assert is_request_for_human(text=text) is False


def test_keywords_come_from_the_setting(settings):
    settings.HUMAN_REQUEST_KEYWORDS = ["mensch"]

    assert is_request_for_human(text="Mensch bitte") is True
    assert is_request_for_human(text="agent please") is False
    assert is_request_for_human(text="talk to an agent") is True  # phrases do not depend on the setting


def _simulator_button_text() -> str:
    page = (Path(django_settings.BASE_DIR) / "templates" / "chat" / "simulator.html").read_text()
    # The text the page's "Talk to a person" button sends, as the template has it.
    return re.search(r'data-action="button" data-text="([^"]+)">Tap “Talk to a person”', page).group(1)


@pytest.mark.django_db
def test_the_simulator_talk_to_a_person_button_flags_the_conversation_without_asking_the_model(
    client, graph_ok, fake_openai
):
    kind, content = simulator.message_content(action="button", text=_simulator_button_text())
    body = json.loads(
        simulator.build_message_body(
            message_id="wamid.SIM.button",
            customer_id="SIM.abcdef123456",
            phone_number="+15550009999",
            name="Sim",
            kind=kind,
            content=content,
        )
    )
    # Sent to the fixture's business number, so the reply goes out through the (faked) Graph API.
    real = json.loads(meta_body("text"))["entry"][0]["changes"][0]["value"]["metadata"]
    body["entry"][0]["changes"][0]["value"]["metadata"] = real

    assert post_meta(client, json.dumps(body).encode()).status_code == 200

    conversation = Conversation.objects.get()
    assert conversation.needs_human is True
    assert fake_openai.requests == []
    assert [sent["text"]["body"] for sent in graph_ok.sent(GRAPH_MESSAGES)] == [HUMAN_COMING_REPLY]
    assert AuditEntry.objects.filter(action="conversation.needs_human", conversation=conversation).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text", ["Ich möchte bitte mit einem echten Menschen reden", "Je voudrais parler à quelqu'un de votre équipe"]
)
def test_a_phrased_request_in_another_language_flags_the_conversation(client, graph_ok, fake_openai, text):
    post_meta(client, meta_text(text, "wamid.phrase"))

    assert Conversation.objects.get().needs_human is True
    assert fake_openai.requests == []


@pytest.mark.django_db
def test_the_models_request_human_tool_flags_what_no_phrase_catches(client, graph_ok, fake_openai):
    fake_openai.call_tool("request_human")
    text = "Nothing you say helps, I need somebody who can actually refund me."
    assert is_request_for_human(text=text) is False

    post_meta(client, meta_text(text, "wamid.tool"))

    [request] = fake_openai.requests
    assert "request_human" in [tool["name"] for tool in request["tools"]]
    assert Conversation.objects.get().needs_human is True
    assert [sent["text"]["body"] for sent in graph_ok.sent(GRAPH_MESSAGES)] == [HUMAN_COMING_REPLY]


@pytest.mark.django_db
def test_a_second_request_does_not_flag_or_audit_twice(client, graph_ok, fake_openai):
    post_meta(client, meta_text("human please", "wamid.one"))
    post_meta(client, meta_text("talk to a person!", "wamid.two"))

    assert AuditEntry.objects.filter(action="conversation.needs_human").count() == 1
