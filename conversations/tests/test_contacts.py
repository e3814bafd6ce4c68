"""Contacts: one person across channels. Identities join by E.164 number on their own (each
provider's shape, through the signed webhooks); email and name matches are only suggested;
staff merge and split, audited, and a split undoes a merge."""

import json

import pytest
from django.core.exceptions import ValidationError

from conversations.models import AuditEntry, Channel, Conversation, Message
from conversations.selectors.contacts import list_merge_suggestions
from conversations.services.contacts import merge_contacts, split_identity
from conversations.services.profiles import update_contact_by_staff
from conversations.services.webchat import receive_webchat_message
from profiles.models import ClientProfile, Contact

from .chat import say, say_on_twilio, two_contacts_of_one_person
from .helpers import meta_body, post_meta, post_twilio, twilio_params

pytestmark = pytest.mark.django_db

ADA_PHONE = "+15551234567"


def contact_of(**identity) -> Contact:
    return ClientProfile.objects.select_related("contact").get(**identity).contact


def test_meta_twilio_whatsapp_and_sms_identities_of_one_number_join_one_contact(client, graph_ok, twilio_ok):
    post_meta(client, meta_body("text"))  # wa_id 15551234567 with a BSUID
    post_twilio(client, twilio_params("whatsapp_text"))  # From whatsapp:+15551234567
    post_twilio(client, twilio_params("sms_inbound"))  # From +15551234567

    identities = ClientProfile.objects.order_by("pk")
    assert [(i.provider, i.external_id) for i in identities] == [
        ("meta", "US.1000000000000000001"),
        ("twilio", "whatsapp:+15551234567"),
        ("twilio", "+15551234567"),
    ]
    contact = Contact.objects.get()
    assert {i.contact_id for i in identities} == {contact.pk}
    assert contact.phone_number == ADA_PHONE
    assert set(Conversation.objects.values_list("channel", flat=True)) == {
        Channel.META_WHATSAPP,
        Channel.TWILIO_WHATSAPP,
        Channel.TWILIO_SMS,
    }


def test_the_first_identity_may_come_from_twilio_and_meta_joins_it(client, graph_ok, twilio_ok):
    post_twilio(client, twilio_params("sms_inbound"))
    post_meta(client, meta_body("text"))

    assert Contact.objects.count() == 1
    assert ClientProfile.objects.count() == 2


def test_a_username_user_without_a_number_and_a_web_visitor_get_contacts_of_their_own(client, graph_ok):
    post_meta(client, meta_body("text"))
    post_meta(client, meta_body("text_username_no_phone"))
    receive_webchat_message(visitor_id="visitor-1", client_message_id="c1", text="Hello from the website")
    receive_webchat_message(visitor_id="visitor-1", client_message_id="c2", text="Still me")

    assert Contact.objects.count() == 3
    username = contact_of(external_id="US.1000000000000000003")
    visitor = contact_of(provider="webchat", external_id="visitor-1")
    assert username.phone_number is None and visitor.phone_number is None
    assert visitor.identities.count() == 1
    assert contact_of(external_id="US.1000000000000000001").phone_number == ADA_PHONE


def test_another_number_is_another_contact(client, graph_ok):
    say(client, "Hi")
    say(client, "Hi too", wa_id="15557654321", user_id="US.1000000000000000777")

    assert Contact.objects.count() == 2
    assert {c.phone_number for c in Contact.objects.all()} == {ADA_PHONE, "+15557654321"}


def test_an_identity_joins_the_contact_its_number_was_merged_into(client, graph_ok, twilio_ok):
    say(client, "Hi")  # Ada, +15551234567
    say(client, "Me again, new phone", wa_id="15557654321", user_id="US.1000000000000000777")
    ada, new_phone = contact_of(external_id="US.1000000000000000001"), contact_of(external_id="US.1000000000000000777")
    merge_contacts(target_id=ada.pk, source_id=new_phone.pk, user=None)

    # The SMS of the merged number finds its identity's contact.
    post_twilio(client, {**twilio_params("sms_inbound"), "From": "+15557654321"})

    assert Contact.objects.count() == 1
    assert contact_of(provider="twilio", external_id="+15557654321") == ada


def test_same_email_or_name_is_only_suggested_never_merged(client, graph_ok):
    say(client, "Hi")
    receive_webchat_message(visitor_id="visitor-1", client_message_id="c1", text="Hello")
    ada, visitor = contact_of(provider="meta"), contact_of(provider="webchat")
    update_contact_by_staff(contact_id=ada.pk, user=None, changes={"email": "ada@example.com"})
    update_contact_by_staff(contact_id=visitor.pk, user=None, changes={"email": "ADA@example.com"})
    receive_webchat_message(visitor_id="visitor-1", client_message_id="c2", text="Any news?")

    assert Contact.objects.count() == 2
    [suggestion] = list_merge_suggestions(contact=Contact.objects.get(pk=ada.pk))
    assert (suggestion.contact.pk, suggestion.reason) == (visitor.pk, "email")
    update_contact_by_staff(contact_id=ada.pk, user=None, changes={"first_name": "Ada", "last_name": "Lovelace"})
    update_contact_by_staff(
        contact_id=visitor.pk, user=None, changes={"first_name": "ada", "last_name": "LOVELACE", "email": ""}
    )
    [suggestion] = list_merge_suggestions(contact=Contact.objects.get(pk=ada.pk))
    assert suggestion.reason == "name"


def test_a_merge_moves_identities_fills_empty_details_keeps_the_opt_out_and_is_audited(
    client, graph_ok, twilio_ok, staff_user
):
    ada, visitor = two_contacts_of_one_person(client)
    Contact.objects.filter(pk=visitor.pk).update(opted_out_at="2026-11-01T10:00:00Z")

    merged = merge_contacts(target_id=ada.pk, source_id=visitor.pk, user=staff_user)

    assert not Contact.objects.filter(pk=visitor.pk).exists()
    assert set(merged.identities.values_list("provider", flat=True)) == {"meta", "webchat"}
    assert (merged.first_name, merged.email) == ("Ada", "ada@example.com")  # the target's name stays
    assert merged.field_sources["email"]["source"] == "staff"
    assert merged.opted_out_at is not None  # a STOP on any channel stands for the person
    entry = AuditEntry.objects.get(action="contact.merged")
    assert (entry.actor, entry.contact_id) == (staff_user, ada.pk)
    assert entry.detail["merged_contact_id"] == visitor.pk
    assert entry.detail["identity_ids"] == [ClientProfile.objects.get(provider="webchat").pk]
    assert entry.detail["fields_taken"] == ["email"]
    # The merged contact's own history followed it.
    assert AuditEntry.objects.filter(contact=ada, action="contact.edited_by_staff").count() == 2


def test_a_split_undoes_a_merge_and_is_audited_on_both_contacts(client, graph_ok, twilio_ok, staff_user):
    ada, visitor = two_contacts_of_one_person(client)
    merge_contacts(target_id=ada.pk, source_id=visitor.pk, user=staff_user)
    web_identity = ClientProfile.objects.get(provider="webchat")

    restored = split_identity(identity_id=web_identity.pk, user=staff_user)

    assert list(restored.identities.all()) == [web_identity]
    assert (restored.first_name, restored.email) == ("Adeline", "ada@example.com")  # given back
    assert list(Contact.objects.get(pk=ada.pk).identities.values_list("provider", flat=True)) == ["meta"]
    splits = AuditEntry.objects.filter(action="contact.split")
    assert {entry.contact_id for entry in splits} == {ada.pk, restored.pk}
    assert all(entry.actor == staff_user and entry.detail["restored_merge"] for entry in splits)
    # The web chat conversation now belongs to the restored contact.
    assert Conversation.objects.get(channel=Channel.WEBCHAT).profile.contact_id == restored.pk


def test_the_last_identity_cannot_be_split_nor_a_contact_merged_with_itself(client, graph_ok):
    say(client, "Hi")
    identity = ClientProfile.objects.get()

    with pytest.raises(ValidationError):
        split_identity(identity_id=identity.pk, user=None)
    with pytest.raises(ValidationError):
        merge_contacts(target_id=identity.contact_id, source_id=identity.contact_id, user=None)
    assert Contact.objects.count() == 1 and not AuditEntry.objects.exists()


def test_splitting_an_identity_of_the_contacts_number_keeps_new_identities_of_it_with_the_contact(
    client, graph_ok, twilio_ok
):
    say(client, "Hi")
    say_on_twilio(client, "Hello", sid="SM" + "1" * 32, sms=True)
    ada = contact_of(provider="meta")
    sms = ClientProfile.objects.get(provider="twilio")

    alone = split_identity(identity_id=sms.pk, user=None)
    say_on_twilio(client, "On WhatsApp now", sid="SM" + "2" * 32)

    assert alone.phone_number is None  # the Meta identity still has the number: it stays the key
    assert contact_of(external_id="whatsapp:+15551234567") == ada


def test_staff_merge_and_split_through_the_live_inbox_api(client, graph_ok, twilio_ok, staff_user):
    ada, visitor = two_contacts_of_one_person(client)
    client.force_login(staff_user)

    suggested = client.get(f"/api/contacts/{ada.pk}/").json()
    merged = client.post(f"/api/contacts/{ada.pk}/merge/", {"contact_id": visitor.pk}, content_type="application/json")
    web_identity = ClientProfile.objects.get(provider="webchat")
    split = client.post(f"/api/identities/{web_identity.pk}/split/")
    refused = client.post(f"/api/identities/{ClientProfile.objects.get(provider='meta').pk}/split/")

    assert [s["id"] for s in suggested["suggestions"]] == []  # Ada has no email yet: nothing to match
    assert merged.status_code == 200
    assert {i["provider"] for i in merged.json()["identities"]} == {"meta", "webchat"}
    assert {c["channel"] for c in merged.json()["conversations"]} == {"meta_whatsapp", "webchat"}
    assert split.status_code == 201
    assert split.json()["email"] == "ada@example.com"
    assert refused.status_code == 400
    assert [e.actor for e in AuditEntry.objects.filter(action__in=["contact.merged", "contact.split"])] == [
        staff_user
    ] * 3


def test_the_inbox_shows_one_contact_with_a_badge_per_channel(client, graph_ok, twilio_ok, staff_user):
    post_meta(client, meta_body("text"))
    post_twilio(client, twilio_params("sms_inbound"))
    client.force_login(staff_user)

    rows = client.get("/api/conversations/").json()

    assert len(rows) == 2  # two conversations…
    assert {row["contact"]["id"] for row in rows} == {Contact.objects.get().pk}  # …of one person
    assert all(
        row["contact"]["channels"]
        == [
            {"channel": "meta_whatsapp", "label": "WhatsApp (Meta)"},
            {"channel": "twilio_sms", "label": "SMS (Twilio)"},
        ]
        for row in rows
    )
    detail = client.get(f"/api/contacts/{rows[0]['contact']['id']}/").json()
    assert sorted(c["id"] for c in detail["conversations"]) == sorted(row["id"] for row in rows)


def test_other_channels_are_summarised_for_the_model_only_when_the_setting_is_on(
    client, graph_ok, twilio_ok, fake_openai, settings
):
    say_on_twilio(client, "My parcel 4711 never arrived", sid="SM" + "1" * 32, sms=True)
    say(client, "Hello")  # WhatsApp: off by default, the SMS stays out of this context
    settings.CONTACT_CONTEXT_SUMMARY = True
    say(client, "Any news?")

    off, on = (json.dumps(request) for request in fake_openai.requests[1:])
    assert "parcel 4711" not in off
    assert "other channels" not in off
    assert "SMS (Twilio)" in on and "customer: My parcel 4711 never arrived" in on
    # Its own conversation is not repeated as "another channel".
    assert "customer: Hello" not in on
    sms_request = json.dumps(fake_openai.requests[0])
    assert "other channels" not in sms_request  # nothing elsewhere yet when the SMS came
    assert Message.objects.filter(author=Message.Author.BOT).count() == 3


def test_a_web_chat_merged_into_the_contact_is_not_told_the_other_channels(client, graph_ok, fake_openai, settings):
    settings.CONTACT_CONTEXT_SUMMARY = True
    say(client, "My parcel 4711 never arrived")
    receive_webchat_message(visitor_id="visitor-1", client_message_id="c1", text="Hello")
    merge_contacts(target_id=contact_of(provider="meta").pk, source_id=contact_of(provider="webchat").pk, user=None)

    receive_webchat_message(visitor_id="visitor-1", client_message_id="c2", text="What did I ask before?")
    say(client, "Any news?")

    webchat_request, whatsapp_request = (json.dumps(request) for request in fake_openai.requests[-2:])
    assert "parcel 4711" not in webchat_request
    assert "Web chat" in whatsapp_request and "customer: What did I ask before?" in whatsapp_request


def test_a_simulated_customer_with_the_number_joins_the_contact_too(client, graph_ok):
    from conversations.providers import simulator

    post_meta(client, meta_body("text"))
    kind, content = simulator.message_content(action="text", text="Hi from the simulator")
    body = simulator.build_message_body(
        message_id=simulator.new_message_id(),
        customer_id="SIM.tab0001",
        phone_number="+15551234567",
        name="Ada in the simulator",
        kind=kind,
        content=content,
    )
    post_meta(client, body)

    assert ClientProfile.objects.count() == 2
    assert Contact.objects.count() == 1


def test_a_private_note_on_another_channel_never_reaches_the_model(
    client, graph_ok, twilio_ok, fake_openai, settings, staff_user
):
    from conversations.services.staff import add_private_note

    settings.CONTACT_CONTEXT_SUMMARY = True
    say_on_twilio(client, "My parcel 4711 never arrived", sid="SM" + "1" * 32, sms=True)
    sms = Conversation.objects.get(channel=Channel.TWILIO_SMS)
    add_private_note(conversation_id=sms.pk, user=staff_user, text="Suspected fraud, do not refund")

    say(client, "Any news?")

    whatsapp_request = json.dumps(fake_openai.requests[-1])
    assert "customer: My parcel 4711 never arrived" in whatsapp_request
    assert "fraud" not in whatsapp_request
