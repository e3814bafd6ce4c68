from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models
from django.db.models import Q
from django.utils import timezone

from profiles.models import Provider

# WhatsApp accepts free-form messages only within 24 h of the customer's last message.
CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)


class Channel(models.TextChoices):
    META_WHATSAPP = "meta_whatsapp", "WhatsApp (Meta)"
    TWILIO_WHATSAPP = "twilio_whatsapp", "WhatsApp (Twilio)"
    TWILIO_SMS = "twilio_sms", "SMS (Twilio)"
    WEBCHAT = "webchat", "Web chat"


_CHANNEL_PROVIDERS = {
    Channel.META_WHATSAPP: Provider.META,
    Channel.TWILIO_WHATSAPP: Provider.TWILIO,
    Channel.TWILIO_SMS: Provider.TWILIO,
    Channel.WEBCHAT: Provider.WEBCHAT,
}


def staff_name(user: AbstractBaseUser | None) -> str:
    """How a staff member is named to colleagues and in notes: full name, else login."""
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


class Conversation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    class Mode(models.TextChoices):
        BOT = "bot", "Bot answers"
        HUMAN = "human", "Staff answers"

    profile = models.ForeignKey("profiles.ClientProfile", on_delete=models.CASCADE, related_name="conversations")
    channel = models.CharField(max_length=32, choices=Channel.choices)
    # Where the customer wrote to: the Meta phone_number_id or the Twilio `To` address.
    # Replies go out from the same number.
    business_address = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.BOT)
    last_customer_message_at = models.DateTimeField(null=True, blank=True)
    # Staff back-office: the customer asked for a person; who holds the conversation in human mode.
    needs_human = models.BooleanField(default=False)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    taken_over_at = models.DateTimeField(null=True, blank=True)
    # The team's read marker: unread counts are per agent (ReadMarker); an agent who never opened
    # the conversation counts from here (what was read before per-agent markers existed).
    last_read_message_id = models.PositiveBigIntegerField(default=0)
    # Helpdesk triage: resolved by staff (a new customer message reopens it), hidden from the
    # open views until a time (a new customer message wakes it), and staff's labels.
    resolved_at = models.DateTimeField(null=True, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    labels = models.ManyToManyField("conversations.Label", blank=True, related_name="conversations")
    # Set only in the OpenAI Conversations API mode (server-side context); erased with the rest.
    openai_conversation_id = models.CharField(max_length=100, blank=True)
    # A model-written summary of the turns older than the verbatim window, up to and including
    # message `summary_through_message_id`: the context stays flat however long the chat grows.
    summary = models.TextField(blank=True)
    summary_through_message_id = models.BigIntegerField(null=True, blank=True)
    # The customer-message count at which the instructions last asked for missing profile details.
    details_asked_at_turn = models.PositiveIntegerField(null=True, blank=True)
    # The agent answering now (agents/): set by a hand-over; None is the entry agent.
    current_agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "channel", "business_address"],
                condition=Q(status="open"),
                name="one_open_conversation_per_customer_and_number",
            ),
        ]
        indexes = [
            # The inbox list's keyset pages: newest activity first, id breaking ties.
            models.Index(fields=["-updated_at", "-id"], name="conversation_page_idx"),
            # The recorder asks whether a sender is one of our numbers (services/inbound.py).
            models.Index(fields=["business_address"], name="conversation_business_idx"),
            # The *mine* tab (and the agent filter): one agent's conversations in the same order,
            # without walking everyone else's.
            models.Index(fields=["assigned_to", "-updated_at", "-id"], name="conversation_holder_page_idx"),
        ]
        # Staff actions no model permission names (the roles in accounts/roles.py grant them).
        permissions = [
            ("take_over", "Can take over a conversation and hand it back"),
            ("write", "Can write to customers (messages and templates)"),
            ("assign", "Can assign conversations to staff"),
            ("triage", "Can resolve, reopen, snooze and label conversations"),
            ("add_private_note", "Can write private notes for colleagues"),
            ("use_simulator", "Can write as a simulated customer in the simulator"),
        ]

    def __str__(self) -> str:
        return f"{self.profile} · {self.get_channel_display()}"

    @property
    def provider(self) -> str:
        return _CHANNEL_PROVIDERS[self.channel]

    @property
    def is_window_open(self) -> bool:
        return is_window_open(channel=self.channel, last_customer_message_at=self.last_customer_message_at)


def is_window_open(*, channel: str, last_customer_message_at: datetime | None) -> bool:
    """True while WhatsApp allows free-form messages (SMS and web chat have no window)."""
    if channel in (Channel.TWILIO_SMS, Channel.WEBCHAT):
        return True
    return last_customer_message_at is not None and timezone.now() - last_customer_message_at < CUSTOMER_SERVICE_WINDOW


class Message(models.Model):
    class Direction(models.TextChoices):
        INBOUND = "in", "Inbound"
        OUTBOUND = "out", "Outbound"

    class Author(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        BOT = "bot", "Bot"
        STAFF = "staff", "Staff"
        # A line for staff and the model (takeover, hand-back), never sent to the customer.
        NOTE = "note", "Internal note"
        # Written by staff for staff: never sent, never in the model's input.
        PRIVATE_NOTE = "private_note", "Private note"

    class Kind(models.TextChoices):
        TEXT = "text", "Text"
        IMAGE = "image", "Image"
        AUDIO = "audio", "Audio"
        VIDEO = "video", "Video"
        DOCUMENT = "document", "Document"
        STICKER = "sticker", "Sticker"
        LOCATION = "location", "Location"
        CONTACTS = "contacts", "Contacts"
        INTERACTIVE = "interactive", "Button or list reply"
        REACTION = "reaction", "Reaction"
        ORDER = "order", "Order"
        SYSTEM = "system", "System notice"
        UNSUPPORTED = "unsupported", "Unsupported"

    class Status(models.TextChoices):
        # Inbound: received -> processing -> handled.
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        HANDLED = "handled", "Handled"
        # Outbound: pending -> sending -> sent -> delivered -> read (-> played), or failed.
        # `sending` is a worker's claim: nothing is in flight until a part is marked attempted.
        # `unknown`: a part may have reached the provider and its answer was lost, until a
        # status, a lookup at the provider or one re-send settles it (services/unknown.py).
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        UNKNOWN = "unknown", "Unknown"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        READ = "read", "Read"
        PLAYED = "played", "Played"
        FAILED = "failed", "Failed"

    # Our own reference, given to the provider with each send (Meta `biz_opaque_callback_data`,
    # Twilio status-callback URL) so a send whose answer was lost is matched by its statuses.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(max_length=3, choices=Direction.choices)
    author = models.CharField(max_length=16, choices=Author.choices)
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TEXT)
    text = models.TextField(blank=True)
    # What staff see instead of the text of an internal note written for the model ("Alice took over").
    staff_label = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    # NULL until the provider gives an id: many rows may lack one, a given id appears once.
    provider_message_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    in_reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies")
    status = models.CharField(max_length=16, choices=Status.choices)
    error_code = models.CharField(max_length=32, blank=True)
    error_title = models.CharField(max_length=255, blank=True)
    # An approved WhatsApp template to send instead of `text`: {"name", "language", "parameters"}.
    template = models.JSONField(default=dict, blank=True)
    send_attempts = models.PositiveSmallIntegerField(default=0)
    # The Celery worker holding the row while it is `processing` or `sending` (its heartbeat
    # says whether it still lives); empty outside a worker.
    claimed_by = models.CharField(max_length=200, blank=True, editable=False)
    # When the retry of a transient failure is due: the sweep leaves the row to that task until then.
    retry_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Re-sends after an unknown outcome the provider could not confirm: never more than one.
    resend_count = models.PositiveSmallIntegerField(default=0, editable=False)
    model = models.CharField(max_length=100, blank=True)
    # The Responses API id when OpenAI stored the response (OPENAI_STORE); needed to erase it.
    openai_response_id = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    provider_timestamp = models.DateTimeField(null=True, blank=True)
    reaction = models.CharField(max_length=32, blank=True, help_text="The customer's latest reaction emoji to it.")
    # The knowledge base passages a bot reply was given and used ({chunk_id, article_id, title,
    # heading, url, cited}): shown to staff, never sent to the customer. No personal data.
    knowledge_sources = models.JSONField(default=list, blank=True)
    # The agent that wrote a bot reply (its name when it wrote it; empty: the default instructions).
    agent_name = models.CharField(max_length=32, blank=True)
    # What its model calls cost, from MODEL_PRICES when it was written (None: no price known).
    cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_message_id"],
                condition=Q(provider_message_id__isnull=False),
                name="unique_provider_message_id",
            ),
            # The idempotency of replies: one bot answer per customer message, however often
            # (or however concurrently) the reply task runs.
            models.UniqueConstraint(
                fields=["in_reply_to"], condition=Q(author="bot"), name="one_bot_reply_per_message"
            ),
        ]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="message_conversation_time_idx"),
            models.Index(fields=["status", "updated_at"], name="message_status_age_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.get_kind_display()} #{self.pk}"

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)


class ProcessedMessage(models.Model):
    """The dedup gate for provider deliveries, and the webhook's durable receipt of a message.

    A webhook writes only this row: the parsed message waits in `pending` until a worker records
    it as a Message (milliseconds; if no worker heard of it, until the sweep), then `pending` is
    emptied. What stays holds no personal data (a hash of the provider's id and a time) and
    outlives the Message, so a retry of an erased message is still recognised and ignored.

    A delivery that fails to record INBOUND_RECORD_MAX_ATTEMPTS times is quarantined: set aside
    for staff (admin), so it is neither retried forever nor in the way of the others.
    """

    provider = models.CharField(max_length=16, choices=Provider.choices)
    provider_message_id = models.CharField(max_length=128)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    pending = models.JSONField(null=True, blank=True, editable=False)
    record_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    # The class of the last error only (no message text: it could quote personal data).
    record_error = models.CharField(max_length=100, blank=True, editable=False)
    quarantined_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "provider_message_id"], name="unique_processed_message"),
        ]
        indexes = [
            # The sweep's query: the few deliveries not recorded yet, oldest first.
            models.Index(fields=["received_at"], condition=Q(pending__isnull=False), name="processed_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.provider_message_id}"

    @staticmethod
    def key_for(provider_message_id: str) -> str:
        """The stored form of a provider's message id: its SHA-256. A Meta wamid embeds the
        customer's phone number (base64), and these rows outlive the erasure of that customer."""
        return hashlib.sha256(provider_message_id.encode()).hexdigest()


def attachment_path(attachment: Attachment, filename: str) -> str:
    # No customer data in the path: the message's random uid names the folder.
    return f"attachments/{attachment.message.uid}/{filename}"


class Attachment(models.Model):
    """A media file of a message (voice note, photo, document…), kept with Django's storage API."""

    class Status(models.TextChoices):
        PENDING = "pending", "Not downloaded yet"
        STORED = "stored", "Stored"
        FAILED = "failed", "Download failed"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    caption = models.TextField(blank=True, help_text="The customer's own caption, as sent.")
    transcript = models.TextField(blank=True, help_text="Speech-to-text of a voice note or audio file.")
    # Meta media id or Twilio media URL: where to download from. Never sent to the model.
    provider_ref = models.CharField(max_length=1024, blank=True)
    original_filename = models.CharField(max_length=255, blank=True)
    is_voice = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.content_type or 'file'} of message #{self.message_id}"


class AuditEntry(models.Model):
    """Who did what to which conversation, identity or contact, and when (staff and data-officer actions)."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=64)
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_entries"
    )
    profile = models.ForeignKey(
        "profiles.ClientProfile", null=True, blank=True, on_delete=models.CASCADE, related_name="audit_entries"
    )
    # The person: merges, splits, consent and staff edits of their details (moved along by a merge).
    contact = models.ForeignKey(
        "profiles.Contact", null=True, blank=True, on_delete=models.CASCADE, related_name="audit_entries"
    )
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.action} by {self.actor or 'system'}"


class MessagePart(models.Model):
    """One provider message of an outbound Message split to fit the channel's length limit.

    The Message stays the unit of a reply (one per inbound, one line in the inbox, full text);
    its parts record what reached the provider, so a re-run send resumes after the last part sent.
    """

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="parts")
    index = models.PositiveSmallIntegerField()
    text = models.TextField()
    provider_message_id = models.CharField(max_length=128, blank=True)
    # Committed just before the provider call (only by whoever set it from NULL: the part's one
    # sender). Set without an id: the part may have reached the provider. NULL: it did not.
    attempted_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["message", "index"]
        constraints = [models.UniqueConstraint(fields=["message", "index"], name="unique_message_part_index")]

    def __str__(self) -> str:
        return f"part {self.index} of message #{self.message_id}"

    def client_ref(self, *, is_last: bool) -> str:
        """Our reference sent with this part, echoed by its statuses: the message uid for the last
        part (its statuses stand for the message), `<uid>#<index>` for the others."""
        return str(self.message.uid) if is_last else f"{self.message.uid}#{self.index}"

    @staticmethod
    def parse_client_ref(client_ref: str) -> tuple[uuid.UUID, int | None] | None:
        """(message uid, part index or None for the message) of a reference; None if it is not ours."""
        uid, _, index = client_ref.partition("#")
        try:
            return uuid.UUID(uid), (int(index) if index else None)
        except ValueError:
            return None


class WorkerHeartbeat(models.Model):
    """One Celery worker's sign of life, written every WORKER_HEARTBEAT_SECONDS by a thread of
    the worker (conversations/bootsteps.py). A claim whose worker stopped beating, or started
    again since, is taken back by the sweep within seconds."""

    name = models.CharField(max_length=200, unique=True)  # the Celery node name (-n)
    started_at = models.DateTimeField()  # this run of the worker: claims older than it are orphans
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name


class ModelUsage(models.Model):
    """Tokens of a model call that is not a stored reply: extraction, summaries, discarded replies."""

    class Purpose(models.TextChoices):
        EXTRACTION = "extraction", "Profile extraction"
        SUMMARY = "summary", "Context summary"
        DISCARDED_REPLY = "discarded_reply", "Reply discarded (a newer message arrived)"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="model_usage")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    model = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} in conversation #{self.conversation_id}"


class ToolCall(models.Model):
    """One call of a function by the model while it answered `message` (an agent's HTTP tool, the
    knowledge search, a hand-over). Its arguments and result are personal data: exported, erased
    and purged with the conversation's messages."""

    class Status(models.TextChoices):
        OK = "ok", "Answered"
        ERROR = "error", "Failed"
        TIMEOUT = "timeout", "Timed out"
        INVALID = "invalid", "Invalid arguments"
        REFUSED = "refused", "Refused (blocked address)"
        NEEDS_CONFIRMATION = "needs_confirmation", "Waiting for the customer's confirmation"
        CONFIRMED = "confirmed", "Confirmed (then called)"
        HANDOVER = "handover", "Hand-over"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="tool_calls")
    # The customer message being answered.
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="tool_calls")
    agent_name = models.CharField(max_length=32, blank=True)
    tool_name = models.CharField(max_length=64)
    arguments = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=24, choices=Status.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    result = models.TextField(blank=True, help_text="What the model read back (truncated).")
    is_truncated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.tool_name} ({self.status}) in conversation #{self.conversation_id}"


class UsageWindow(models.Model):
    """A count for one contact (the person, on every channel they write on) from `starts_at`:
    tokens per day and limit notices per period, one row each, raised by conditional UPDATEs so
    concurrent workers never pass a limit together; and one row per model reply (`count` 1),
    whose last minute is the sliding reply rate. Rows of past periods are only history; deleted
    with the contact."""

    class Kind(models.TextChoices):
        REPLIES = "replies", "Model replies (one row each)"
        TOKENS = "tokens", "Model tokens per day"
        # One notice per limit and period: replies (an hour), tokens (a day), spend (a month).
        NOTICE_REPLIES = "notice_replies", "Notice: replies per minute"
        NOTICE_TOKENS = "notice_tokens", "Notice: tokens per day"
        NOTICE_SPEND = "notice_spend", "Notice: monthly spend"

    # Indexed first in usage_window_lookup.
    contact = models.ForeignKey("profiles.Contact", on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    starts_at = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "kind", "starts_at"],
                condition=~Q(kind="replies"),
                name="one_usage_window_per_contact_period",
            )
        ]
        indexes = [models.Index(fields=["contact", "kind", "starts_at"], name="usage_window_lookup")]

    def __str__(self) -> str:
        return f"{self.kind} of contact #{self.contact_id} from {self.starts_at:%Y-%m-%d %H:%M}"


class MonthlySpend(models.Model):
    """What the model cost in one calendar month (UTC), in MODEL_PRICE_CURRENCY: the spend cap's
    counter. Not personal data: it stays when the conversations it counts are erased."""

    month = models.DateField(unique=True)
    amount = models.DecimalField(max_digits=14, decimal_places=6, default=0)

    def __str__(self) -> str:
        return f"{self.month:%Y-%m}: {self.amount}"


class CapturedWebhook(models.Model):
    """A raw webhook request kept for `replay_webhook` (WEBHOOK_CAPTURE_HOURS). Personal data:
    purged after its hours, erased with its subject."""

    provider = models.CharField(max_length=16, choices=Provider.choices)
    path = models.CharField(max_length=500, help_text="Path and query string as requested.")
    headers = models.JSONField(default=dict)
    body = models.BinaryField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.provider} webhook #{self.pk}"


class Label(models.Model):
    """A tag staff put on conversations (billing, urgent, …), managed in the admin."""

    name = models.CharField(max_length=50, unique=True)
    color = models.CharField(max_length=7, default="#667781", help_text="A CSS colour, #rrggbb.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CannedResponse(models.Model):
    """A saved answer staff insert in the live inbox composer by typing `/shortcut`."""

    shortcut = models.SlugField(max_length=50, unique=True, help_text="Typed after a slash: /shipping")
    text = models.TextField(max_length=4096)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["shortcut"]

    def __str__(self) -> str:
        return f"/{self.shortcut}"


class ReadMarker(models.Model):
    """How far one staff member has read one conversation: unread counts are per agent."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="read_markers")
    last_read_message_id = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["conversation", "user"], name="one_read_marker_per_agent")]

    def __str__(self) -> str:
        return f"read marker of user {self.user_id} in conversation #{self.conversation_id}"
