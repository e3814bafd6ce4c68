"""The reply path's statements written as SQL (selectors/answering.py) read what the ORM reads:
each is checked against the ORM code it stands for, on SQLite and on PostgreSQL."""

from decimal import Decimal

import pytest
from django.utils import timezone

from agents.models import Agent
from conversations.models import Conversation, Message
from conversations.selectors import prompt
from conversations.selectors.answering import get_message_to_answer, list_turns_for_prompt
from profiles.models import Contact

from .helpers import meta_text, post_meta

pytestmark = pytest.mark.django_db

A = Message.Author


def first_message(client) -> Message:
    post_meta(client, meta_text("Hello", "wamid.SQL1"))
    return Message.objects.get(author=A.CUSTOMER)


def add(conversation: Conversation, author: str, text: str, **fields) -> Message:
    direction = Message.Direction.INBOUND if author == A.CUSTOMER else Message.Direction.OUTBOUND
    return Message.objects.create(
        conversation=conversation, direction=direction, author=author, text=text, provider="meta", **fields
    )


def fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_the_message_to_answer_is_read_with_its_conversation_profile_and_contact_as_the_orm_reads_them(client):
    inbound = first_message(client)
    # Values the ORM converts on the way in (dates, decimals, JSON; SQLite stores them as text).
    Contact.objects.update(
        first_name="Ada", opted_in_at=timezone.now(), field_sources={"first_name": {"by": "customer"}}
    )
    Message.objects.filter(pk=inbound.pk).update(cost=Decimal("0.000123"), knowledge_sources=[{"id": 1}])

    read = get_message_to_answer(message_id=inbound.pk)

    orm = Message.objects.select_related("conversation__profile__contact").get(pk=inbound.pk)
    assert fields(read) == fields(orm)
    assert fields(read.conversation) == fields(orm.conversation)
    assert fields(read.conversation.profile) == fields(orm.conversation.profile)
    assert fields(read.conversation.profile.contact) == fields(orm.conversation.profile.contact)
    assert (read.entry_agent_id, read.has_newer) == (None, False)


def test_the_message_to_answer_carries_the_entry_agent_and_whether_a_newer_customer_message_waits(client):
    inbound = first_message(client)
    add(inbound.conversation, A.CUSTOMER, "/reset")  # a command does not wait for the answer
    add(inbound.conversation, A.BOT, "Anything else?")
    Agent.objects.create(name="sales", instructions="Sell.")
    entry = Agent.objects.create(name="front", instructions="Greet.", is_entry=True)

    read = get_message_to_answer(message_id=inbound.pk)
    assert (read.entry_agent_id, read.has_newer) == (entry.pk, False)

    add(inbound.conversation, A.CUSTOMER, "And on Sunday?")
    assert get_message_to_answer(message_id=inbound.pk).has_newer is True

    with pytest.raises(Message.DoesNotExist):
        get_message_to_answer(message_id=inbound.pk + 1000)


def test_the_prompts_turns_are_the_messages_the_orm_rule_selects(client):
    inbound = first_message(client)
    conversation = inbound.conversation
    add(conversation, A.BOT, "Hi! How can I help?")
    add(conversation, A.PRIVATE_NOTE, "VIP, be nice")  # for colleagues only
    add(conversation, A.BOT, "A reply that failed", status=Message.Status.FAILED)
    add(conversation, A.CUSTOMER, "")  # a reaction or a photo without words
    command = add(conversation, A.CUSTOMER, "/forget")
    add(conversation, A.BOT, "Forgotten.", in_reply_to=command)
    add(conversation, A.NOTE, "Staff handed the conversation back.")
    add(conversation, A.STAFF, "We open at nine.")
    last = add(conversation, A.CUSTOMER, "Thanks!")
    add(conversation, A.CUSTOMER, "Later than the message answered")

    for limit in (2, 20):
        expected = list(reversed(prompt._prompt_messages(last).order_by("-id").values_list("author", "text")[:limit]))
        turns = list_turns_for_prompt(message=last, limit=limit)
        assert [(turn.role, turn.text) for turn in turns] == [
            (prompt.prompt_role(author), text) for author, text in expected
        ]
    assert [turn.text for turn in list_turns_for_prompt(message=last, limit=20)] == [
        "Hello",
        "Hi! How can I help?",
        "Staff handed the conversation back.",
        "We open at nine.",
        "Thanks!",
    ]
