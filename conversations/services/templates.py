"""Sending a stored template message through the conversation's provider."""

from __future__ import annotations

from conversations.models import Channel, Message
from conversations.providers import meta, simulator, twilio
from conversations.providers.base import SendResult


def send_template_through_provider(message: Message) -> SendResult:
    """On Twilio the template `name` is the Content SID (HX…); its language is part of it."""
    conversation = message.conversation
    profile = conversation.profile
    template = message.template
    if conversation.business_address == simulator.SIMULATOR_NUMBER_ID:
        # The simulator has no template store: its customer sees the summary staff see.
        return simulator.send_text(customer_id=profile.external_id, body=message.text, client_ref=str(message.uid))
    if conversation.channel == Channel.META_WHATSAPP:
        return meta.send_template(
            business_address=conversation.business_address,
            phone_number=profile.phone_number,
            user_id=profile.external_id,
            name=template["name"],
            language=template["language"],
            parameters=template.get("parameters", []),
            client_ref=str(message.uid),
        )
    return twilio.send_template(
        business_address=conversation.business_address,
        to=profile.external_id,
        content_sid=template["name"],
        parameters=template.get("parameters", []),
        client_ref=str(message.uid),
    )
