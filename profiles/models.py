from __future__ import annotations

from django.db import models


class Provider(models.TextChoices):
    """Who carries a customer's messages to us (and knows them by an id of its own)."""

    META = "meta", "Meta Cloud API"
    TWILIO = "twilio", "Twilio"
    WEBCHAT = "webchat", "Web chat"


def person_name(first_name: str, last_name: str) -> str:
    return f"{first_name} {last_name}".strip()


def identity_name(*, full_name: str, display_name: str, phone_number: str, external_id: str) -> str:
    """How a channel identity is named: its contact's name, else what the provider knows it by
    (also for the live inbox's rows, read as plain values)."""
    return full_name or display_name or phone_number or external_id


# The details a customer can give about themselves in chat (the only fields extraction may write).
EXTRACTABLE_FIELDS = ("first_name", "last_name", "company", "email")


class Contact(models.Model):
    """A person. They reach us through one or more channel identities (ClientProfile); what is
    true of them whatever the channel (names, company, email, consent) is kept here."""

    # The E.164 number whose new identities join this contact automatically (unique: two first
    # messages of one number on two channels at once end as one contact). NULL when none.
    phone_number = models.CharField(
        max_length=32, null=True, blank=True, unique=True, help_text="New identities with this number join."
    )
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    company = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    # Per extractable field: {"source": "extracted" | "staff", "at": ISO time}. A staff value is
    # never overwritten by extraction.
    field_sources = models.JSONField(default=dict, blank=True)
    # Set when the customer declined to give their details: the bot stops asking.
    details_declined_at = models.DateTimeField(null=True, blank=True)
    # Consent to bot messages on every channel (STOP-like keywords and START, on any of them).
    opted_out_at = models.DateTimeField(
        null=True, blank=True, help_text="When the person asked for no more bot messages."
    )
    opted_in_at = models.DateTimeField(null=True, blank=True, help_text="When the person last asked to resume them.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.full_name or self.phone_number or f"Contact #{self.pk}"

    @property
    def full_name(self) -> str:
        return person_name(self.first_name, self.last_name)

    @property
    def missing_fields(self) -> list[str]:
        return [name for name in EXTRACTABLE_FIELDS if not getattr(self, name)]


class ClientProfile(models.Model):
    """One channel identity of a contact: how one provider knows them.

    `external_id` is the provider's stable user id: on Meta the business-scoped user id
    (BSUID) when the payload carries one, else the WhatsApp id; on Twilio the sender address
    (`whatsapp:+…` or `+…`); on the web chat a random visitor id from a signed cookie. A
    WhatsApp username user may have no phone number at all.
    """

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    external_id = models.CharField(max_length=160)
    phone_number = models.CharField(max_length=32, blank=True, help_text="E.164, when known.")
    display_name = models.CharField(max_length=200, blank=True, help_text="As the provider gave it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "channel identity"
        verbose_name_plural = "channel identities"
        constraints = [
            models.UniqueConstraint(fields=["provider", "external_id"], name="unique_profile_per_provider_user"),
        ]
        indexes = [models.Index(fields=["phone_number"])]

    def __str__(self) -> str:
        return identity_name(
            full_name=self.contact.full_name,
            display_name=self.display_name,
            phone_number=self.phone_number,
            external_id=self.external_id,
        )
