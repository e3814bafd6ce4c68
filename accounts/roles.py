"""The four staff roles, defined here and nowhere else.

Each role is a Django group holding exactly the permissions listed below. Migration
`accounts.0001_initial` creates the groups and every `migrate` (post_migrate) resets them to this
table, so a role is what this file says, reviewable in a diff. To give one person more, add a
second role or a permission to the user. A new model or endpoint adds its permission here, in
the role(s) that need it (docs/architecture.md, "Staff permissions").
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

AGENT = "Agent"
SUPERVISOR = "Supervisor"
DATA_OFFICER = "Data officer"
ADMINISTRATOR = "Administrator"


def _model(app_label: str, model: str, *actions: str) -> set[str]:
    return {f"{app_label}.{action}_{model}" for action in actions}


_CRUD = ("view", "add", "change", "delete")

# The live inbox: read conversations and messages, take over, write, triage (resolve, snooze,
# label), private notes, correct a contact (merge and split contacts too).
_AGENT = {
    "conversations.view_conversation",
    "conversations.view_message",
    "conversations.view_attachment",
    "conversations.view_toolcall",
    "conversations.take_over",
    "conversations.write",
    "conversations.triage",
    "conversations.add_private_note",
    "conversations.view_label",
    "conversations.view_cannedresponse",
    "profiles.view_clientprofile",
    "profiles.change_clientprofile",
    "profiles.view_contact",
    "profiles.change_contact",
}

ROLES: dict[str, frozenset[str]] = {
    AGENT: frozenset(_AGENT),
    # Also the bot's configuration: assignment, labels and canned responses, the knowledge base,
    # tools and agents (their budgets), the delivery queue, API tokens and outgoing webhooks, and
    # the simulator to try it (where SIMULATOR_ENABLED).
    SUPERVISOR: frozenset(
        _AGENT
        | {"conversations.assign", "conversations.view_auditentry", "conversations.use_simulator"}
        | _model("conversations", "processedmessage", "view", "change")
        | _model("conversations", "label", *_CRUD)
        | _model("conversations", "cannedresponse", *_CRUD)
        | _model("knowledge", "article", *_CRUD)
        | _model("knowledge", "tag", *_CRUD)
        | _model("knowledge", "knowledgeimport", "view", "add", "delete")
        | _model("knowledge", "chunk", "view")
        | _model("agents", "tool", *_CRUD)
        | _model("agents", "agent", *_CRUD)
        | _model("integrations", "apitoken", *_CRUD)
        | _model("integrations", "webhookendpoint", *_CRUD)
        | _model("integrations", "webhookdelivery", "view")
    ),
    # GDPR requests; no conversation list (a data officer who also answers customers is an Agent too).
    DATA_OFFICER: frozenset(
        {"gdpr.export_subject", "gdpr.erase_subject", "profiles.view_clientprofile", "profiles.view_contact"}
        | _model("gdpr", "erasurerecord", "view")
        | _model("gdpr", "remotedeletion", "view")
    ),
    # Users and their roles, lock-outs, two-factor resets, API tokens and the security audit trail.
    ADMINISTRATOR: frozenset(
        _model("auth", "user", *_CRUD)
        | _model("auth", "group", "view")
        | _model("axes", "accessattempt", "view", "delete")
        | _model("axes", "accessfailurelog", "view")
        | _model("axes", "accesslog", "view")
        | _model("otp_totp", "totpdevice", "view", "delete")
        | _model("otp_static", "staticdevice", "view", "delete")
        | _model("accounts", "securityevent", "view")
        # API tokens act as their staff member: only an Administrator creates one for someone else.
        | _model("integrations", "apitoken", "view", "add", "change")
        | {"integrations.add_apitoken_for_others"}
    ),
}

# Roles whose members must log in with a second factor (STAFF_TWO_FACTOR_REQUIRED: everyone).
TWO_FACTOR_ROLES = frozenset({SUPERVISOR, DATA_OFFICER, ADMINISTRATOR})


def is_two_factor_required(user: Any) -> bool:
    """True for staff who may not work without a second factor: their role, or the setting."""
    if not (user.is_authenticated and user.is_staff):
        return False
    if settings.STAFF_TWO_FACTOR_REQUIRED or user.is_superuser:
        return True
    return user.groups.filter(name__in=TWO_FACTOR_ROLES).exists()


def sync_roles(*, group_model: Any, permission_model: Any) -> list[str]:
    """Make each role group hold exactly its permissions; returns the permissions not found.

    Takes the models so the migration can pass its historical ones. The permissions are read in
    one query: this runs after every migrate, and after every flush of a transactional test.
    """
    wanted_by_role = {name: sorted(wanted) for name, wanted in ROLES.items()}
    codenames = {dotted.split(".", 1)[1] for wanted in wanted_by_role.values() for dotted in wanted}
    found = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in permission_model.objects.filter(codename__in=codenames).values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    missing: list[str] = []
    for name, wanted in wanted_by_role.items():
        group, _ = group_model.objects.get_or_create(name=name)
        missing += [f"{name}: {dotted}" for dotted in wanted if dotted not in found]
        group.permissions.set([found[dotted] for dotted in wanted if dotted in found])
    return missing
