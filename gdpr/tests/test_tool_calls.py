"""The model's tool calls are personal data: exported, erased (the dump scan of test_erasure
finds the one build_ada makes) and purged with the messages they answered."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from django.utils import timezone

from conversations.models import Conversation, Message, ToolCall, UsageWindow
from gdpr.erasure import erase_subject, plan_erasure
from gdpr.export import build_subject_export
from gdpr.retention import purge_expired
from gdpr.subjects import find_subject
from profiles.models import ClientProfile, Contact

from .builders import ADA, build_ada, build_grace

pytestmark = pytest.mark.django_db

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "gdpr_export.schema.json").read_text())


def test_the_export_holds_the_tool_calls_of_each_conversation(client, graph_ok, twilio_ok):
    build_ada(client)
    build_grace(client)

    document = build_subject_export(subject=find_subject(identifier=ADA["phone"]))

    jsonschema.validate(document, SCHEMA)
    calls = [call for p in document["profiles"] for c in p["conversations"] for call in c["tool_calls"]]
    assert [(call["tool_name"], call["arguments"]) for call in calls] == [
        ("lookup_order", {"phone": ADA["phone"], "order_id": "1001"})
    ]
    assert "Ada Lovelace" in calls[0]["result"]


def test_erasure_deletes_the_tool_calls_and_counts_them(client, graph_ok, twilio_ok, openai_store):
    build_ada(client)
    subject = find_subject(identifier=ADA["phone"])
    assert plan_erasure(subject=subject).counts["tool_calls"] == 1

    record = erase_subject(subject=subject)

    assert not ToolCall.objects.exists()
    assert record.counts["tool_calls"] == 1


def test_retention_purges_tool_calls_older_than_the_cutoff():
    profile = ClientProfile.objects.create(contact=Contact.objects.create(), provider="meta", external_id="15550001111")
    conversation = Conversation.objects.create(profile=profile, channel="meta_whatsapp", business_address="1")
    message = Message.objects.create(
        conversation=conversation, direction="in", author="customer", text="hi", provider="meta", status="handled"
    )
    old = ToolCall.objects.create(conversation=conversation, message=None, tool_name="lookup_order", status="ok")
    recent = ToolCall.objects.create(conversation=conversation, message=message, tool_name="lookup_order", status="ok")
    ToolCall.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    summary = purge_expired(retention_days=30)

    assert summary.tool_calls == 1
    assert list(ToolCall.objects.values_list("pk", flat=True)) == [recent.pk]


def test_the_purge_drops_budget_counters_of_periods_long_over():
    contact = Contact.objects.create()
    now = timezone.now()
    old = UsageWindow.objects.create(contact=contact, kind="replies", starts_at=now - timedelta(days=41), count=3)
    current = UsageWindow.objects.create(contact=contact, kind="replies", starts_at=now, count=1)

    summary = purge_expired(now=now)

    assert summary.usage_windows == 1
    assert list(UsageWindow.objects.values_list("pk", flat=True)) == [current.pk]
    assert not UsageWindow.objects.filter(pk=old.pk).exists()
