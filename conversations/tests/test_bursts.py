"""Bursts: quick successive messages get one reply; a reply overtaken by a newer message is discarded."""

from unittest.mock import patch

import pytest
from celery import current_app
from django.db import connection

from conversations.dispatch import PROCESS_INBOUND
from conversations.models import Message, ModelUsage
from conversations.selectors.prompt import get_conversation_token_usage
from conversations.tasks import process_inbound_message
from conversations.tests.fakes import GRAPH_MESSAGES

from .chat import graph_messages, say

pytestmark = pytest.mark.django_db


def say_in_one_burst(client, *texts: str) -> None:
    """Record every message before any reply task runs, as when they arrive within the burst
    window (eager tasks ignore its countdown): the reply tasks are held back until all the
    messages are stored, then run in arrival order."""
    held = []
    task = current_app.tasks[PROCESS_INBOUND]
    with patch.object(task, "apply_async", side_effect=lambda args, **options: held.append(args)):
        for text in texts:
            say(client, text)
    for args in held:
        task.apply_async(args=args)


def test_a_three_message_burst_gets_one_reply_that_reads_all_of_them(client, graph_ok, fake_openai):
    fake_openai.answer("Yes, we deliver to Milan on Tuesdays.")

    say_in_one_burst(client, "Hi", "do you deliver", "to Milan?")

    assert len(fake_openai.requests) == 1
    assert [turn["content"] for turn in fake_openai.requests[0]["input"]] == ["Hi", "do you deliver", "to Milan?"]
    [sent] = graph_messages(graph_ok, GRAPH_MESSAGES)
    assert sent["text"]["body"] == "Yes, we deliver to Milan on Tuesdays."
    reply = Message.objects.get(author=Message.Author.BOT)
    assert reply.in_reply_to.text == "to Milan?"
    statuses = set(Message.objects.filter(author=Message.Author.CUSTOMER).values_list("status", flat=True))
    assert statuses == {Message.Status.HANDLED}


def test_past_the_maximum_wait_every_message_of_a_stream_is_answered(client, graph_ok, fake_openai, settings):
    settings.BURST_MAX_WAIT_SECONDS = 0

    say_in_one_burst(client, "Hi", "do you deliver", "to Milan?")

    assert len(fake_openai.requests) == 3
    assert len(graph_messages(graph_ok, GRAPH_MESSAGES)) == 3
    # Each answer reads the messages up to its own, not the ones after it.
    assert [request["input"][-1]["content"] for request in fake_openai.requests] == [
        "Hi",
        "do you deliver",
        "to Milan?",
    ]
    assert [len(request["input"]) for request in fake_openai.requests] == [1, 2, 3]


def test_a_command_in_a_burst_is_answered_and_does_not_swallow_the_question(client, graph_ok, fake_openai):
    say_in_one_burst(client, "When do you open?", "/help")

    assert len(fake_openai.requests) == 1
    assert len(graph_messages(graph_ok, GRAPH_MESSAGES)) == 2


# Real commits: another thread (the fake OpenAI server's) uses its own database connection.
@pytest.mark.django_db(transaction=True)
def test_a_reply_generated_before_a_newer_message_arrived_is_discarded_and_its_cost_counted(
    client, graph_ok, fake_openai
):
    def newer_message_arrives(request_body):
        # While the model writes, the customer sends another message (another web process).
        first = Message.objects.get(text="Hi")
        Message.objects.create(
            conversation_id=first.conversation_id,
            direction=Message.Direction.INBOUND,
            author=Message.Author.CUSTOMER,
            text="are you open today?",
            provider="meta",
            provider_message_id="wamid.LATE",
            status=Message.Status.RECEIVED,
        )
        connection.close()
        fake_openai.during_request = None

    fake_openai.during_request = newer_message_arrives
    fake_openai.answer("Hello!", input_tokens=100, output_tokens=20)

    say(client, "Hi")

    assert graph_messages(graph_ok, GRAPH_MESSAGES) == []
    assert not Message.objects.filter(author=Message.Author.BOT).exists()
    discarded = ModelUsage.objects.get(purpose=ModelUsage.Purpose.DISCARDED_REPLY)
    assert (discarded.input_tokens, discarded.output_tokens, discarded.message.text) == (100, 20, "Hi")

    fake_openai.answer("Yes, until six.", input_tokens=120, output_tokens=10)
    process_inbound_message.delay(Message.objects.get(provider_message_id="wamid.LATE").pk)

    [sent] = graph_messages(graph_ok, GRAPH_MESSAGES)
    assert sent["text"]["body"] == "Yes, until six."
    assert [turn["content"] for turn in fake_openai.requests[-1]["input"]] == ["Hi", "are you open today?"]
    usage = get_conversation_token_usage(conversation_id=discarded.conversation_id)
    assert usage["total_tokens"] == 100 + 20 + 120 + 10  # the details are recorded within the replies' calls
