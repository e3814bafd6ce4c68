"""Many conversations at once, for the pages whose query count must not grow with them."""

from __future__ import annotations

from django.utils import timezone

from conversations.models import AuditEntry, Channel, Conversation, Message, ProcessedMessage, Provider
from profiles.models import ClientProfile, Contact


def make_conversations(count: int, *, staff, start: int = 0) -> list[Conversation]:
    """`count` conversations, each with a customer message, a delivered bot reply and a failed staff reply."""
    now = timezone.now()
    numbers = range(start, start + count)
    contacts = Contact.objects.bulk_create(
        Contact(phone_number=f"+1555{i:07d}", company=f"Company {i}", email=f"customer{i}@example.com") for i in numbers
    )
    profiles = ClientProfile.objects.bulk_create(
        ClientProfile(
            contact=contact,
            provider=Provider.META,
            external_id=f"US.{i:019d}",
            phone_number=f"+1555{i:07d}",
            display_name=f"Customer {i}",
        )
        for i, contact in zip(numbers, contacts, strict=True)
    )
    conversations = Conversation.objects.bulk_create(
        Conversation(
            profile=profile,
            channel=Channel.META_WHATSAPP,
            business_address="110000000000001",
            last_customer_message_at=now,
            mode=Conversation.Mode.HUMAN if i % 2 else Conversation.Mode.BOT,
            assigned_to=staff if i % 2 else None,
            needs_human=i % 3 == 0,
        )
        for i, profile in zip(numbers, profiles, strict=True)
    )
    messages = []
    for i, conversation in zip(numbers, conversations, strict=True):
        common = {"conversation": conversation, "provider": Provider.META}
        messages += [
            Message(
                **common,
                direction="in",
                author="customer",
                text=f"Question {i}",
                status="handled",
                provider_message_id=f"wamid.in{i}",
            ),
            Message(**common, direction="out", author="bot", text=f"Answer {i}", status="delivered"),
            Message(
                **common,
                direction="out",
                author="staff",
                staff_user=staff,
                text=f"Staff note {i}",
                status="failed",
                error_code="131047",
                error_title="Re-engagement message",
            ),
        ]
    Message.objects.bulk_create(messages)
    ProcessedMessage.objects.bulk_create(
        ProcessedMessage(provider=Provider.META, provider_message_id=f"wamid.in{i}") for i in numbers
    )
    AuditEntry.objects.bulk_create(
        AuditEntry(
            actor=staff, action="conversation.taken_over", conversation=conversation, profile=conversation.profile
        )
        for conversation in conversations
    )
    return conversations
