"""Contacts in the admin: suggested matches with a link to compare, merge and split as actions."""

import pytest

from conversations.models import AuditEntry
from conversations.services.profiles import update_contact_by_staff
from conversations.tests.chat import two_contacts_of_one_person
from profiles.models import ClientProfile

pytestmark = pytest.mark.django_db


def test_the_admin_merges_selected_contacts_and_splits_an_identity(
    admin_client, admin_user, client, graph_ok, twilio_ok
):
    ada, visitor = two_contacts_of_one_person(client)

    page = admin_client.get(f"/admin/profiles/contact/{visitor.pk}/change/").content.decode()
    merged = admin_client.post(
        "/admin/profiles/contact/",
        {"action": "merge_selected_contacts", "_selected_action": [visitor.pk, ada.pk]},
        follow=True,
    )
    web_identity = ClientProfile.objects.get(provider="webchat")
    split = admin_client.post(
        "/admin/profiles/clientprofile/",
        {"action": "split_selected_identities", "_selected_action": [web_identity.pk]},
        follow=True,
    )

    assert "compare and merge" not in page  # no match yet
    assert f"Merged 1 contact(s) into contact #{ada.pk}." in merged.content.decode()
    assert f"Identity #{web_identity.pk} is now contact #" in split.content.decode()
    assert [e.actor for e in AuditEntry.objects.filter(action__in=["contact.merged", "contact.split"])] == [
        admin_user
    ] * 3


def test_the_admin_shows_a_suggested_match_with_a_link_to_compare_and_merge(admin_client, client, graph_ok, twilio_ok):
    ada, visitor = two_contacts_of_one_person(client)
    update_contact_by_staff(contact_id=ada.pk, user=None, changes={"email": "Ada@Example.com"})

    page = admin_client.get(f"/admin/profiles/contact/{ada.pk}/change/").content.decode()
    compare = admin_client.get(f"/admin/profiles/contact/?id__in={ada.pk},{visitor.pk}")

    assert f"?id__in={ada.pk},{visitor.pk}" in page and "(same email)" in page
    assert compare.context["cl"].result_count == 2
