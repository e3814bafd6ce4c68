"""The security audit trail: who, when, from where, what — never contents or customer numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from accounts.models import SecurityEvent
from accounts.roles import ADMINISTRATOR, AGENT, DATA_OFFICER, SUPERVISOR
from accounts.tasks import purge_expired_security_events
from accounts.tests.helpers import log_in, make_staff
from channels_app.tests.backoffice_data import make_conversations

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"


def events(action: str):
    return SecurityEvent.objects.filter(action=action)


def test_a_login_is_recorded_with_the_address(client):
    agent = make_staff("agent", AGENT)

    client.post("/admin/login/", {"username": "agent", "password": PASSWORD}, REMOTE_ADDR="203.0.113.5")

    login = events("login").get()
    assert (login.actor, login.actor_label, login.ip_address) == (agent, "agent", "203.0.113.5")


def test_a_role_given_in_the_admin_is_recorded_with_who_gave_it(client):
    administrator = make_staff("root", ADMINISTRATOR)
    agent = make_staff("agent", AGENT)
    log_in(client, administrator)
    joined = timezone.localtime(agent.date_joined)

    response = client.post(
        f"/admin/auth/user/{agent.pk}/change/",
        {
            "username": "agent",
            "is_active": "on",
            "is_staff": "on",
            "groups": [Group.objects.get(name=SUPERVISOR).pk],
            "date_joined_0": joined.strftime("%Y-%m-%d"),
            "date_joined_1": joined.strftime("%H:%M:%S"),
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(agent.groups.values_list("name", flat=True)) == [SUPERVISOR]
    changes = events("role.changed").filter(target=f"auth.user #{agent.pk}", actor=administrator)
    assert {(e.detail["change"], tuple(e.detail["items"])) for e in changes} == {
        ("remove", (AGENT,)),
        ("add", (SUPERVISOR,)),
    }
    assert events("configuration.changed").filter(actor=administrator, target=f"auth.user #{agent.pk}").exists()


def test_exports_erasures_and_takeovers_are_recorded_without_customer_numbers(client):
    officer = make_staff("dpo", DATA_OFFICER)
    agent = make_staff("agent", AGENT)
    conversation = make_conversations(1, staff=agent)[0]
    profile_id = conversation.profile_id
    log_in(Client(), agent).post(f"/api/conversations/{conversation.pk}/takeover/", REMOTE_ADDR="192.0.2.4")
    log_in(client, officer)

    client.post(
        "/admin/profiles/clientprofile/",
        {"action": "export_personal_data", "_selected_action": [profile_id], "post": "yes", "format": "json"},
    )
    client.post(
        "/admin/profiles/clientprofile/",
        {"action": "erase_personal_data", "_selected_action": [profile_id], "post": "yes"},
    )

    takeover = events("conversation.taken_over").get()
    assert (takeover.actor, takeover.target) == (agent, f"conversations.conversation #{conversation.pk}")
    assert events("gdpr.export").get().target == f"profiles.clientprofile #{profile_id}"
    assert events("gdpr.erase").get().actor == officer
    everything = " ".join(str(e.__dict__) for e in SecurityEvent.objects.all())
    assert "5550000000" not in everything and "Customer 0" not in everything and "Question 0" not in everything


def test_a_configuration_change_in_the_admin_is_recorded(client):
    supervisor = make_staff("sup", SUPERVISOR)
    log_in(client, supervisor)

    response = client.post("/admin/knowledge/tag/add/", {"name": "shipping"})

    assert response.status_code == 302
    change = events("configuration.changed").get(actor=supervisor)
    assert change.target.startswith("knowledge.tag #") and change.detail == {"change": "added"}


def test_administrators_filter_the_trail_and_nobody_else_reads_it(client):
    make_staff("agent", AGENT)
    Client().post("/admin/login/", {"username": "agent", "password": "wrong-password-1"})
    Client().post("/admin/login/", {"username": "agent", "password": PASSWORD})
    log_in(client, make_staff("root", ADMINISTRATOR))

    failed_only = client.get("/admin/accounts/securityevent/?action__exact=login.failed").content.decode()

    assert "Failed login" in failed_only and "Logged in</td>" not in failed_only
    assert log_in(Client(), make_staff("sup", SUPERVISOR)).get("/admin/accounts/securityevent/").status_code == 403


def test_events_older_than_the_retention_are_purged(settings):
    settings.SECURITY_AUDIT_RETENTION_DAYS = 30
    old = SecurityEvent.objects.create(action="login")
    SecurityEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    recent = SecurityEvent.objects.create(action="login")

    assert purge_expired_security_events() >= 1

    assert not SecurityEvent.objects.filter(pk=old.pk).exists()
    assert SecurityEvent.objects.filter(pk=recent.pk).exists()
