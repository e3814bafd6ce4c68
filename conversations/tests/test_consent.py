import pytest
from django.db import connection
from django.utils import timezone

from conversations.models import AuditEntry, Message
from conversations.services.outbound import send_message
from conversations.tests.fakes import GRAPH_MESSAGES, TWILIO_MESSAGES
from conversations.tests.helpers import meta_text, post_meta, post_twilio, twilio_params
from profiles.consent import OPT_IN_CONFIRMATIONS, OPT_OUT_CONFIRMATIONS, normalize_keyword, opt_out_language
from profiles.models import Contact

pytestmark = pytest.mark.django_db

_counter = iter(range(1, 1000))


def ada_says(client, text: str):
    return post_meta(client, meta_text(text, f"wamid.T{next(_counter)}"))


def pending_outbound(conversation, *, author: str, text: str) -> Message:
    return Message.objects.create(
        conversation=conversation, direction="out", author=author, text=text, provider="meta", status="pending"
    )


def sent_texts(graph_ok) -> list[str]:
    return [sent["text"]["body"] for sent in graph_ok.sent(GRAPH_MESSAGES)]


def test_stop_sends_one_confirmation_and_then_the_bot_says_nothing(client, graph_ok, fake_openai):
    ada_says(client, "Hello")
    ada_says(client, "STOP")
    ada_says(client, "stop")
    ada_says(client, "Are you open on Sunday?")

    assert sent_texts(graph_ok) == ["Hello! How can I help?", OPT_OUT_CONFIRMATIONS["en"]]
    assert len(fake_openai.requests) == 1  # only the message before STOP reached the model
    profile = Contact.objects.get()
    assert profile.opted_out_at is not None
    assert list(AuditEntry.objects.values_list("action", "detail__keyword")) == [("consent.opt_out", "stop")]
    assert set(Message.objects.filter(author="customer").values_list("status", flat=True)) == {"handled"}


def test_start_resumes_the_bot_after_one_confirmation(client, graph_ok, fake_openai):
    ada_says(client, "Baja")
    ada_says(client, "START")
    ada_says(client, "Are you open on Sunday?")

    assert sent_texts(graph_ok) == [OPT_OUT_CONFIRMATIONS["es"], OPT_IN_CONFIRMATIONS["en"], "Hello! How can I help?"]
    profile = Contact.objects.get()
    assert profile.opted_out_at is None and profile.opted_in_at is not None
    assert [a for (a,) in AuditEntry.objects.order_by("created_at").values_list("action")] == [
        "consent.opt_out",
        "consent.opt_in",
    ]


def test_start_without_a_previous_stop_is_an_ordinary_message(client, graph_ok, fake_openai):
    ada_says(client, "start")

    assert sent_texts(graph_ok) == ["Hello! How can I help?"]
    assert Contact.objects.get().opted_in_at is None


def test_a_sentence_containing_stop_is_an_ordinary_message(client, graph_ok, fake_openai):
    ada_says(client, "Where is the bus stop near your shop?")

    assert sent_texts(graph_ok) == ["Hello! How can I help?"]
    assert Contact.objects.get().opted_out_at is None


def test_twilio_customers_can_opt_out_too(client, twilio_ok, fake_openai):
    params = {**twilio_params("whatsapp_text"), "Body": "Unsubscribe!"}
    post_twilio(client, params)
    post_twilio(client, {**params, "Body": "hello?", "MessageSid": "SM" + "1" * 32, "SmsMessageSid": "SM" + "1" * 32})

    assert [s["Body"] for s in twilio_ok.sent(TWILIO_MESSAGES)] == [OPT_OUT_CONFIRMATIONS["en"]]
    assert fake_openai.requests == []


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("STOP", "en"),
        (" Stop. ", "en"),
        ("unsubscribe", "en"),
        ("CANCEL", "en"),
        ("BAJA", "es"),
        ("¡Baja!", "es"),
        ("ARRÊT", "fr"),
        ("arret", "fr"),
        ("STOPP", "de"),
        ("Opt out", "en"),
    ],
)
def test_opt_out_keywords_are_recognised_whatever_the_case_accents_or_punctuation(text, language):
    assert opt_out_language(text) == language


@pytest.mark.parametrize("text", ["stop it please", "stopping by", "", "🛑", "No quiero baja calidad"])
def test_only_a_whole_message_keyword_opts_out(text):
    assert opt_out_language(text) is None
    assert normalize_keyword("  ÁRRÊT!! ") == "arret"


def test_send_message_refuses_a_bot_message_to_a_person_who_opted_out(client, graph_ok, fake_openai):
    ada_says(client, "Hello")
    profile = Contact.objects.get()
    inbound = Message.objects.get(author="customer")
    Contact.objects.filter(pk=profile.pk).update(opted_out_at=inbound.created_at)
    # A bot message stored before the opt-out, sent after it (a queued reminder, a retry).
    late = pending_outbound(inbound.conversation, author="bot", text="Any other question?")

    send_message(message_id=late.pk)

    late.refresh_from_db()
    assert (late.status, late.error_code) == ("failed", "opted_out")
    assert sent_texts(graph_ok) == ["Hello! How can I help?"]


# Real commits: the fake OpenAI server's thread writes through its own database connection.
@pytest.mark.django_db(transaction=True)
def test_a_reply_written_while_the_person_opted_out_is_never_sent(client, graph_ok, fake_openai):
    def stop_committed_mid_call(request_body):
        try:
            Contact.objects.update(opted_out_at=timezone.now())
        finally:
            connection.close()  # this runs in the fake server's thread

    fake_openai.during_request = stop_committed_mid_call

    ada_says(client, "Are you open on Sunday?")

    # The reply was read with a contact that had not opted out; its send is stopped all the same.
    reply = Message.objects.get(author="bot")
    assert (reply.status, reply.error_code) == ("failed", "opted_out")
    assert sent_texts(graph_ok) == []
    assert not reply.parts.filter(attempted_at__isnull=False).exists()


def test_staff_messages_still_reach_a_person_who_opted_out_of_the_bot(client, graph_ok, fake_openai):
    ada_says(client, "STOP")
    inbound = Message.objects.filter(author="customer").get()
    staff = pending_outbound(inbound.conversation, author="staff", text="Your refund was sent.")

    send_message(message_id=staff.pk)

    assert sent_texts(graph_ok) == [OPT_OUT_CONFIRMATIONS["en"], "Your refund was sent."]


def test_stop_on_whatsapp_also_stops_sms_replies_to_the_same_person(client, graph_ok, twilio_ok, fake_openai):
    ada_says(client, "STOP")  # WhatsApp via Meta, from +15551234567
    post_twilio(client, {**twilio_params("sms_inbound"), "Body": "Are you open on Sunday?"})  # SMS, same number

    assert sent_texts(graph_ok) == [OPT_OUT_CONFIRMATIONS["en"]]
    assert twilio_ok.sent(TWILIO_MESSAGES) == []
    assert fake_openai.requests == []
    sms = Message.objects.get(author="customer", provider="twilio")
    assert sms.status == "handled"
    # A bot message queued for the SMS conversation is refused too; the person is one contact.
    late = pending_outbound(sms.conversation, author="bot", text="Any other question?")
    late.provider = "twilio"
    late.save(update_fields=["provider"])
    send_message(message_id=late.pk)
    late.refresh_from_db()
    assert (late.status, late.error_code) == ("failed", "opted_out")
    assert Contact.objects.count() == 1
    [entry] = AuditEntry.objects.filter(action="consent.opt_out")
    assert entry.contact == Contact.objects.get()
    assert entry.detail["channel"] == "meta_whatsapp"


def test_start_by_sms_resumes_the_bot_on_whatsapp(client, graph_ok, twilio_ok, fake_openai):
    ada_says(client, "STOP")
    post_twilio(client, {**twilio_params("sms_inbound"), "Body": "START"})
    ada_says(client, "Are you open on Sunday?")

    assert [s["Body"] for s in twilio_ok.sent(TWILIO_MESSAGES)] == [OPT_IN_CONFIRMATIONS["en"]]
    assert sent_texts(graph_ok) == [OPT_OUT_CONFIRMATIONS["en"], "Hello! How can I help?"]
    assert Contact.objects.get().opted_out_at is None
