"""Manual takeover: the bot falls silent, one holder writes, hand-back resumes with context."""

import json
from datetime import timedelta

import pytest
import responses
from django.db import connection
from django.utils import timezone

from conversations.models import AuditEntry, Conversation, Message
from conversations.services import replies
from conversations.services.handoff import HUMAN_COMING_REPLY
from conversations.services.outbound import send_stored_reply
from conversations.services.staff import (
    NotHolder,
    WindowClosed,
    hand_back_conversation,
    send_staff_message,
    send_template_message,
    take_over_conversation,
)
from conversations.tasks import hand_back_idle_conversations, send_outbound_message
from conversations.tests.fakes import GRAPH_MESSAGES, TWILIO_MESSAGES

from .helpers import meta_body, meta_text, post_meta, post_twilio, twilio_params

pytestmark = pytest.mark.django_db


def bodies(graph) -> list[str]:
    return [sent["text"]["body"] for sent in graph.sent(GRAPH_MESSAGES) if sent["type"] == "text"]


# Real commits: another thread (the fake OpenAI server's) uses its own database connection.
@pytest.mark.django_db(transaction=True)
def test_taking_over_while_a_reply_is_being_generated_means_that_reply_is_not_sent(
    client, graph_ok, fake_openai, staff_user
):
    def staff_takes_over_mid_call(request_body):
        try:
            take_over_conversation(conversation_id=Conversation.objects.get().pk, user=staff_user)
        finally:
            connection.close()  # this runs in the fake server's thread

    fake_openai.during_request = staff_takes_over_mid_call

    post_meta(client, meta_body("text"))

    assert len(fake_openai.requests) == 1
    assert graph_ok.sent(GRAPH_MESSAGES) == []
    assert not Message.objects.filter(author=Message.Author.BOT).exists()
    assert Message.objects.get(author=Message.Author.CUSTOMER).status == Message.Status.HANDLED
    conversation = Conversation.objects.get()
    assert (conversation.mode, conversation.assigned_to) == (Conversation.Mode.HUMAN, staff_user)


def test_a_takeover_committed_between_storing_a_reply_and_sending_it_stops_the_send(
    client, graph_ok, staff_user, monkeypatch
):
    def take_over_first(**kwargs):
        take_over_conversation(conversation_id=Conversation.objects.get().pk, user=staff_user)
        return send_stored_reply(**kwargs)

    # The reply and its conversation are in the task's hands, read before the takeover.
    monkeypatch.setattr(replies, "send_stored_reply", take_over_first)

    post_meta(client, meta_body("text"))

    assert graph_ok.sent(GRAPH_MESSAGES) == []
    reply = Message.objects.get(author=Message.Author.BOT)
    assert (reply.status, reply.error_code) == (Message.Status.FAILED, "taken_over")


def test_a_bot_reply_stored_just_before_the_takeover_is_never_sent(client, graph_ok, staff_user):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    late_reply = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.BOT,
        provider=conversation.provider,
        text="A reply that lost the race",
        status=Message.Status.PENDING,
    )
    take_over_conversation(conversation_id=conversation.pk, user=staff_user)

    send_outbound_message.delay(late_reply.pk)

    assert "A reply that lost the race" not in bodies(graph_ok)
    late_reply.refresh_from_db()
    assert (late_reply.status, late_reply.error_code) == (Message.Status.FAILED, "taken_over")


def test_hand_back_resumes_replies_with_the_staff_message_in_the_model_context(
    client, graph_ok, fake_openai, staff_user
):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    take_over_conversation(conversation_id=conversation.pk, user=staff_user)
    post_meta(client, meta_text("Can I book a table for four tonight?", "wamid.booking"))
    send_staff_message(conversation_id=conversation.pk, user=staff_user, text="Booked: table for 4 at 20:00.")
    hand_back_conversation(conversation_id=conversation.pk, user=staff_user)
    fake_openai.answer("See you at 20:00!")

    post_meta(client, meta_text("Great, thanks! Is there parking?", "wamid.parking"))

    assert bodies(graph_ok) == ["Hello! How can I help?", "Booked: table for 4 at 20:00.", "See you at 20:00!"]
    assert len(fake_openai.requests) == 2  # nothing asked while staff held the conversation
    model_input = fake_openai.requests[-1]["input"]
    assert {"role": "assistant", "content": "Booked: table for 4 at 20:00."} in model_input
    notes = [turn["content"] for turn in model_input if turn["role"] == "developer"]
    assert "Alice Staff took over" in notes[0]
    assert "handed this conversation back" in notes[1]
    assert model_input[-1] == {"role": "user", "content": "Great, thanks! Is there parking?"}
    staff_message = Message.objects.get(author=Message.Author.STAFF)
    assert (staff_message.staff_user, staff_message.status) == (staff_user, Message.Status.SENT)
    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor__username")) == [
        ("conversation.taken_over", "alice"),
        ("message.sent_by_staff", "alice"),
        ("conversation.handed_back", "alice"),
    ]


def test_only_the_holder_writes_and_another_staff_member_must_take_over_explicitly(
    client, graph_ok, staff_user, other_staff
):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    take_over_conversation(conversation_id=conversation.pk, user=staff_user)

    with pytest.raises(NotHolder, match="Alice Staff holds"):
        send_staff_message(conversation_id=conversation.pk, user=other_staff, text="Me too!")
    with pytest.raises(NotHolder):
        hand_back_conversation(conversation_id=conversation.pk, user=other_staff)

    take_over_conversation(conversation_id=conversation.pk, user=other_staff)
    with pytest.raises(NotHolder, match="Bob holds"):
        send_staff_message(conversation_id=conversation.pk, user=staff_user, text="Still me")
    send_staff_message(conversation_id=conversation.pk, user=other_staff, text="Bob here.")

    assert bodies(graph_ok)[-1] == "Bob here."
    assert not Message.objects.filter(text__in=["Me too!", "Still me"]).exists()
    takeover = AuditEntry.objects.filter(action="conversation.taken_over").order_by("id").last()
    assert (takeover.actor, takeover.detail) == (other_staff, {"previous_holder_id": staff_user.pk})


def test_a_closed_window_refuses_free_form_and_sends_a_template_as_graph_documents_it(client, graph_ok, staff_user):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    Conversation.objects.filter(pk=conversation.pk).update(
        last_customer_message_at=timezone.now() - timedelta(hours=25)
    )
    take_over_conversation(conversation_id=conversation.pk, user=staff_user)

    with pytest.raises(WindowClosed):
        send_staff_message(conversation_id=conversation.pk, user=staff_user, text="Hello again")
    send_template_message(
        conversation_id=conversation.pk, user=staff_user, name="order_update", language="en_US", parameters=["42"]
    )

    template_sends = [sent for sent in graph_ok.sent(GRAPH_MESSAGES) if sent["type"] == "template"]
    assert template_sends == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "type": "template",
            "template": {
                "name": "order_update",
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
            },
            "biz_opaque_callback_data": str(Message.objects.get(author=Message.Author.STAFF).uid),
            "to": "+15551234567",
        }
    ]
    assert AuditEntry.objects.filter(action="template.sent_by_staff", actor=staff_user).exists()


def test_a_twilio_template_goes_out_with_its_content_sid_and_numbered_variables(client, twilio_ok, staff_user):
    post_twilio(client, twilio_params("whatsapp_text"))
    conversation = Conversation.objects.get()
    take_over_conversation(conversation_id=conversation.pk, user=staff_user)

    send_template_message(
        conversation_id=conversation.pk,
        user=staff_user,
        name="HXb5b62575e6e4ff6129ad7c8efe1f983e",
        language="en",
        parameters=["Ada", "12/1"],
    )

    sent = twilio_ok.sent(TWILIO_MESSAGES)[-1]
    assert sent["ContentSid"] == "HXb5b62575e6e4ff6129ad7c8efe1f983e"
    assert json.loads(sent["ContentVariables"]) == {"1": "Ada", "2": "12/1"}
    assert (sent["To"], sent["From"]) == ("whatsapp:+15551234567", "whatsapp:+15550001234")
    assert "Body" not in sent


def test_a_provider_refusal_is_kept_on_the_message_with_its_reason(client, graph_ok, staff_user):
    post_meta(client, meta_body("text"))
    conversation = Conversation.objects.get()
    take_over_conversation(conversation_id=conversation.pk, user=staff_user)
    graph_ok.replace(
        responses.POST,
        GRAPH_MESSAGES,
        status=400,
        json={"error": {"message": "(#132001) Template name does not exist in the translation", "code": 132001}},
    )

    message = send_template_message(
        conversation_id=conversation.pk, user=staff_user, name="no_such_template", language="en", parameters=[]
    )

    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert (message.error_code, message.error_title) == (
        "132001",
        "(#132001) Template name does not exist in the translation",
    )


def test_conversations_idle_in_human_mode_are_handed_back_automatically(client, graph_ok, staff_user, settings):
    settings.HUMAN_MODE_IDLE_MINUTES = 30
    post_meta(client, meta_body("text"))
    post_meta(client, meta_text("Hello from Bea", "wamid.bea").replace(b"0000000001", b"0000000002"))
    idle, busy = Conversation.objects.order_by("id")
    for conversation in (idle, busy):
        take_over_conversation(conversation_id=conversation.pk, user=staff_user)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Conversation.objects.update(taken_over_at=an_hour_ago)
    Message.objects.update(created_at=an_hour_ago)
    send_staff_message(conversation_id=busy.pk, user=staff_user, text="Still on it")

    hand_back_idle_conversations.delay()

    idle.refresh_from_db()
    busy.refresh_from_db()
    assert (idle.mode, idle.assigned_to) == (Conversation.Mode.BOT, None)
    assert busy.mode == Conversation.Mode.HUMAN
    entry = AuditEntry.objects.get(action="conversation.handed_back")
    assert (entry.conversation, entry.actor, entry.detail) == (idle, None, {"reason": "idle"})


@pytest.mark.parametrize("text", ["I want to talk to a HUMAN", "Posso parlare con un operatore?", "agent please"])
def test_a_customer_asking_for_a_person_flags_the_conversation_and_hears_someone_will_come(
    client, graph_ok, fake_openai, text
):
    post_meta(client, meta_text(text, "wamid.human"))

    assert bodies(graph_ok) == [HUMAN_COMING_REPLY]
    assert fake_openai.requests == []
    conversation = Conversation.objects.get()
    assert conversation.needs_human is True
    assert AuditEntry.objects.get(action="conversation.needs_human").conversation == conversation


def test_a_request_for_a_person_the_model_detects_flags_the_conversation(client, graph_ok, fake_openai):
    fake_openai.call_tool("request_human")

    post_meta(client, meta_text("This is going nowhere, can somebody real look at my order?", "wamid.real"))

    assert "request_human" in [tool["name"] for tool in fake_openai.requests[0]["tools"]]
    assert bodies(graph_ok) == [HUMAN_COMING_REPLY]
    assert Conversation.objects.get().needs_human is True


def test_taking_over_clears_the_needs_human_flag(client, graph_ok, staff_user):
    post_meta(client, meta_text("human please", "wamid.h"))

    take_over_conversation(conversation_id=Conversation.objects.get().pk, user=staff_user)

    assert Conversation.objects.get().needs_human is False


def test_a_keyword_inside_a_longer_question_is_left_to_the_model(client, graph_ok, fake_openai):
    fake_openai.answer("The guided tour costs 30 euros per person.")

    post_meta(client, meta_text("Quanto costa la visita guidata per persona, con la guida in inglese?", "wamid.tour"))

    conversation = Message.objects.get(provider_message_id="wamid.tour").conversation
    assert not conversation.needs_human
    assert graph_ok.sent(GRAPH_MESSAGES)[-1]["text"]["body"] == "The guided tour costs 30 euros per person."
