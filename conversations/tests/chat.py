"""Helpers for conversation tests: customer messages with chosen words, through the real webhooks."""

from __future__ import annotations

from .helpers import meta_text, post_meta, post_twilio, twilio_params


def say(client, text: str, *, wamid: str | None = None, **sender) -> None:
    """The customer writes `text` on WhatsApp (Meta); the webhook answers 200."""
    say.counter += 1
    response = post_meta(client, meta_text(text, wamid or f"wamid.TEST{say.counter}", **sender))
    assert response.status_code == 200


say.counter = 0


def say_on_twilio(client, text: str, *, sid: str, sms: bool = False) -> None:
    params = twilio_params("whatsapp_text")
    params.update(Body=text, MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)
    if sms:
        params.update(From="+15551234567", To="+15550001234")
    response = post_twilio(client, params)
    assert response.status_code == 200


def graph_messages(mock, url: str) -> list[dict]:
    """Only the messages sent through Graph, not read receipts."""
    return [body for body in mock.sent(url) if body.get("status") != "read"]


def two_contacts_of_one_person(client):
    """Ada on WhatsApp and, as a web chat visitor, "Adeline" with an email: two contacts so far."""
    from conversations.services.profiles import update_contact_by_staff
    from conversations.services.webchat import receive_webchat_message
    from profiles.models import Contact

    say(client, "Hi")
    receive_webchat_message(visitor_id="visitor-1", client_message_id="c1", text="Hello from the website")
    ada = Contact.objects.get(identities__provider="meta")
    visitor = Contact.objects.get(identities__provider="webchat")
    update_contact_by_staff(contact_id=ada.pk, user=None, changes={"first_name": "Ada"})
    update_contact_by_staff(
        contact_id=visitor.pk, user=None, changes={"first_name": "Adeline", "email": "ada@example.com"}
    )
    return Contact.objects.get(pk=ada.pk), Contact.objects.get(pk=visitor.pk)
