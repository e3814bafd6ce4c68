"""What staff configure for the bot: HTTP tools the model may call and agents that use them.

Configuration only, no personal data: what happens in a conversation (tool calls, the current
agent, limits reached) is recorded by `conversations`, which reads these models through
`agents.selectors` and `agents.tools`.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

# The Responses API's rule for function names.
NAME_RULE = RegexValidator(r"^[a-z][a-z0-9_]{0,47}$", "Lowercase letters, digits and _, starting with a letter.")


class Tool(models.Model):
    """An HTTP endpoint of the business the model may call with arguments it chooses."""

    class Method(models.TextChoices):
        GET = "GET"
        POST = "POST"
        PUT = "PUT"
        PATCH = "PATCH"
        DELETE = "DELETE"

    name = models.CharField(max_length=48, unique=True, validators=[NAME_RULE], help_text="e.g. lookup_order")
    description = models.TextField(help_text="For the model: what the tool does and when to use it.")
    parameters = models.JSONField(
        default=dict,
        help_text='JSON Schema of the arguments, e.g. {"type": "object", "properties": {"order_id": '
        '{"type": "string", "pattern": "^[0-9]+$"}}, "required": ["order_id"]}. Checked on every call.',
    )
    method = models.CharField(max_length=8, choices=Method.choices, default=Method.GET)
    url_template = models.CharField(
        max_length=500,
        help_text="RFC 6570 template: https://shop.example/api/orders/{order_id}. Arguments not in the "
        "template go in the query string (GET, DELETE) or the JSON body.",
    )
    headers = models.JSONField(
        default=dict, blank=True, help_text='Plain headers, e.g. {"Accept": "application/json"}.'
    )
    secret_headers = models.JSONField(
        default=dict,
        blank=True,
        help_text='Header → name of the environment variable holding its value, e.g. {"Authorization": '
        '"TOOL_SECRET_ORDERS"}. Names must start with TOOL_SECRET_; values never enter the database.',
    )
    timeout_seconds = models.FloatField(default=5, validators=[MinValueValidator(0.1), MaxValueValidator(30)])
    allowed_hosts = models.JSONField(
        default=list, blank=True, help_text='Hosts the tool may reach, redirects included, e.g. ["shop.example"].'
    )
    result_fields = models.JSONField(
        default=list,
        blank=True,
        help_text='Dotted paths of the JSON answer the model reads back, e.g. ["status", "shipment.eta"]; '
        "empty: the whole answer.",
    )
    max_result_chars = models.PositiveIntegerField(default=1000, validators=[MaxValueValidator(20_000)])
    changes_something = models.BooleanField(
        default=False,
        help_text="It changes something (cancels an order…): called only after the customer confirmed the "
        "same call in the conversation.",
    )
    is_active = models.BooleanField("active", default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Agent(models.Model):
    """A persona of the bot: its instructions, model and tools, and whom it may hand over to."""

    name = models.CharField(
        max_length=32,
        unique=True,
        validators=[NAME_RULE],
        help_text="e.g. billing: the hand-over is transfer_to_billing",
    )
    description = models.CharField(max_length=300, blank=True, help_text="For other agents: when to hand over to it.")
    instructions = models.TextField(help_text="Its system instructions.")
    model = models.CharField(max_length=100, blank=True, help_text="Empty: OPENAI_MODEL.")
    tools = models.ManyToManyField(Tool, blank=True, related_name="agents")
    knowledge_tags = models.ManyToManyField(
        "knowledge.Tag", blank=True, related_name="+", help_text="Search only articles with these tags (none: all)."
    )
    handoffs = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="+", help_text="Agents it may hand the conversation to."
    )
    is_entry = models.BooleanField("entry agent", default=False, help_text="Answers new conversations.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["is_entry"], condition=Q(is_entry=True), name="one_entry_agent")]

    def __str__(self) -> str:
        return self.name

    @property
    def transfer_name(self) -> str:
        return f"transfer_to_{self.name}"
