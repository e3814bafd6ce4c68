"""Slash commands: answered from the database, without any model call."""

import pytest

from conversations.formatting import to_whatsapp
from conversations.models import Conversation, Message
from conversations.services.commands import EMPTY_HISTORY_TEXT, HELP_TEXT, RESET_TEXT
from conversations.tests.fakes import GRAPH_MESSAGES
from profiles.models import Contact

from .chat import graph_messages, say

pytestmark = pytest.mark.django_db


def last_sent(graph_ok) -> str:
    return graph_messages(graph_ok, GRAPH_MESSAGES)[-1]["text"]["body"]


@pytest.mark.parametrize("command", ["/help", "/HELP", " /Help ", "/whatever", "/x please"])
def test_help_and_unknown_commands_answer_with_the_help_text(client, graph_ok, fake_openai, command):
    say(client, command)

    assert last_sent(graph_ok) == to_whatsapp(HELP_TEXT)
    assert "*Commands*" in last_sent(graph_ok)
    assert fake_openai.requests == []
    assert fake_openai.extractions == []
    reply = Message.objects.get(author=Message.Author.BOT)
    assert (reply.model, reply.input_tokens) == ("", None)


def test_info_shows_what_is_stored_about_the_customer(client, graph_ok, fake_openai):
    say(client, "Hi")
    Contact.objects.update(first_name="Ada", email="ada@example.com")

    say(client, "/INFO")

    assert last_sent(graph_ok) == (
        "What we store about you:\n\n"
        "- First name: Ada\n"
        "- Email: ada@example.com\n"
        "- Phone: +15551234567\n\n"
        "Not known: last name, company.\n\n"
        "Type /reset to start a fresh conversation."
    )
    assert len(fake_openai.requests) == 1  # the "Hi" only


def test_history_shows_the_recent_exchange_compactly(client, graph_ok, fake_openai):
    fake_openai.answer("We open at nine. " * 10)
    say(client, "When do you open?")
    say(client, "And on Sunday?")

    say(client, "/history")

    lines = last_sent(graph_ok).split("\n")
    assert lines[0] == "You: When do you open?"
    assert lines[1].startswith("Us: We open at nine.") and lines[1].endswith("…") and len(lines[1]) <= 84
    assert lines[2] == "You: And on Sunday?"
    assert lines[3] == f"Us: {fake_openai.default_text}"
    assert len(lines) == 4
    assert len(fake_openai.requests) == 2


def test_history_of_a_fresh_conversation_says_so(client, graph_ok, fake_openai):
    say(client, "/history")

    assert last_sent(graph_ok) == EMPTY_HISTORY_TEXT


def test_reset_starts_a_new_context_and_keeps_the_history_in_the_database(client, graph_ok, fake_openai):
    say(client, "My order number is 4411")

    say(client, "/reset")

    assert last_sent(graph_ok) == RESET_TEXT
    old = Conversation.objects.get(status=Conversation.Status.CLOSED)
    new = Conversation.objects.get(status=Conversation.Status.OPEN)
    assert old.messages.filter(text="My order number is 4411").exists()

    say(client, "What was my order number?")

    assert Message.objects.get(text="What was my order number?").conversation == new
    last_input = fake_openai.requests[-1]["input"]
    assert last_input == [{"role": "user", "content": "What was my order number?"}]
    assert Message.objects.filter(text="My order number is 4411").exists()


def test_commands_and_their_answers_stay_out_of_the_model_context(client, graph_ok, fake_openai):
    say(client, "Hi")
    say(client, "/help")

    say(client, "Do you deliver?")

    contents = [turn["content"] for turn in fake_openai.requests[-1]["input"]]
    assert contents == ["Hi", fake_openai.default_text, "Do you deliver?"]


def test_a_command_is_not_answered_while_staff_have_the_conversation(client, graph_ok, fake_openai):
    say(client, "Hi")
    Conversation.objects.update(mode=Conversation.Mode.HUMAN)

    say(client, "/help")

    assert len(graph_messages(graph_ok, GRAPH_MESSAGES)) == 1
