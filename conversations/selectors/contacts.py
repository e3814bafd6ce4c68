"""Reads about contacts: a person's identities and conversations, and who they may also be."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Max, Q

from conversations.models import Conversation
from profiles.models import Contact

SUGGESTION_LIMIT = 10


@dataclass(frozen=True)
class Suggestion:
    """Another contact that may be the same person: shown to staff, never merged by itself."""

    contact: Contact
    reason: str  # "email" or "name"


def list_merge_suggestions(*, contact: Contact) -> list[Suggestion]:
    """Contacts with the same email address or the same full name (case ignored), newest first."""
    matches = Q()
    if contact.email:
        matches |= Q(email__iexact=contact.email)
    if contact.first_name and contact.last_name:
        matches |= Q(first_name__iexact=contact.first_name, last_name__iexact=contact.last_name)
    if not matches:
        return []
    others = Contact.objects.filter(matches).exclude(pk=contact.pk).order_by("-updated_at", "-pk")
    return [
        Suggestion(
            contact=other,
            reason="email" if contact.email and other.email.lower() == contact.email.lower() else "name",
        )
        for other in others[:SUGGESTION_LIMIT]
    ]


def list_conversations_of_contact(*, contact_id: int) -> list[Conversation]:
    """Every conversation of the contact, on any channel and identity, the most recent first."""
    return list(
        Conversation.objects.filter(profile__contact_id=contact_id)
        .annotate(last_message_at=Max("messages__created_at"))
        .order_by("-updated_at", "-pk")
    )


def get_contact_for_inbox(*, contact_id: int) -> Contact:
    """A contact with its identities, conversations (`inbox_conversations`) and merge
    suggestions (`merge_suggestions`), as the live inbox's side panel shows them."""
    contact = Contact.objects.prefetch_related("identities").get(pk=contact_id)
    contact.inbox_conversations = list_conversations_of_contact(contact_id=contact.pk)  # type: ignore[attr-defined]
    contact.merge_suggestions = list_merge_suggestions(contact=contact)  # type: ignore[attr-defined]
    return contact
