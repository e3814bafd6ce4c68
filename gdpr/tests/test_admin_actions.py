import io
import json
import zipfile

import pytest
from django.contrib.auth.models import Group, Permission, User

from accounts.roles import DATA_OFFICER
from accounts.tests.helpers import log_in, make_staff
from conversations.models import AuditEntry
from gdpr.models import ErasureRecord
from profiles.models import ClientProfile, Contact

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/profiles/clientprofile/"


@pytest.fixture
def profile():
    return ClientProfile.objects.create(
        contact=Contact.objects.create(phone_number="+15551234567"),
        provider="meta",
        external_id="US.1000000000000000001",
        phone_number="+15551234567",
        display_name="Ada",
    )


@pytest.fixture
def staff(client):
    """Support staff: may see and change profiles, is no data officer."""
    user = User.objects.create_user("support", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_clientprofile", "change_clientprofile"]))
    client.force_login(user)
    return user


@pytest.fixture
def data_officer(client):
    user = make_staff("dpo", DATA_OFFICER)
    log_in(client, user)
    return user


def run_action(client, action: str, profile, **extra):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [profile.pk], **extra})


def test_the_data_officer_role_holds_the_gdpr_permissions_and_no_conversations():
    group = Group.objects.get(name=DATA_OFFICER)

    assert set(group.permissions.values_list("content_type__app_label", "codename")) == {
        ("gdpr", "export_subject"),
        ("gdpr", "erase_subject"),
        ("gdpr", "view_erasurerecord"),
        ("gdpr", "view_remotedeletion"),
        ("profiles", "view_clientprofile"),
        ("profiles", "view_contact"),
    }


def test_admin_actions_are_refused_for_staff_without_the_data_officer_permission(client, staff, profile):
    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert b"erase_personal_data" not in page.content and b"export_personal_data" not in page.content

    erase = run_action(client, "erase_personal_data", profile, post="yes")
    export = run_action(client, "export_personal_data", profile, post="yes", format="json")

    for response in (erase, export):  # back to the list: the action does not exist for this user
        assert response.status_code == 302 and response["Location"] == CHANGELIST
        assert "Content-Disposition" not in response
    assert ClientProfile.objects.filter(pk=profile.pk).exists()
    assert not ErasureRecord.objects.exists()
    assert not AuditEntry.objects.filter(action="gdpr.export").exists()


def test_a_data_officer_sees_a_confirmation_page_before_the_erasure(client, data_officer, profile):
    assert b"erase_personal_data" in client.get(CHANGELIST).content

    page = run_action(client, "erase_personal_data", profile)

    assert page.status_code == 200
    assert b"cannot be undone" in page.content and b'name="post" value="yes"' in page.content
    assert ClientProfile.objects.filter(pk=profile.pk).exists()


def test_a_data_officer_erases_after_confirming(client, data_officer, profile, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(client, "erase_personal_data", profile, post="yes")

    assert response.status_code == 302
    assert not ClientProfile.objects.filter(pk=profile.pk).exists()
    record = ErasureRecord.objects.get()
    assert (record.performed_by, record.performed_by_label) == (data_officer, "dpo")


def test_a_data_officer_downloads_the_export_after_choosing_a_format(client, data_officer, profile):
    page = run_action(client, "export_personal_data", profile)
    assert page.status_code == 200 and b'name="format"' in page.content

    response = run_action(client, "export_personal_data", profile, post="yes", format="zip")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="gdpr-export-profile-{profile.pk}.zip"'
    document = json.loads(zipfile.ZipFile(io.BytesIO(response.content)).read("export.json"))
    assert document["profiles"][0]["fields"]["phone_number"] == "+15551234567"
    assert AuditEntry.objects.get(action="gdpr.export").actor == data_officer


def test_the_export_action_wants_exactly_one_profile(client, data_officer, profile):
    other = ClientProfile.objects.create(
        contact=Contact.objects.create(), provider="twilio", external_id="whatsapp:+15557654321"
    )

    response = client.post(
        CHANGELIST, {"action": "export_personal_data", "_selected_action": [profile.pk, other.pk]}, follow=True
    )

    assert b"Select exactly one profile to export." in response.content


def test_erasure_records_are_visible_to_data_officers_only(client, staff):
    assert client.get("/admin/gdpr/erasurerecord/").status_code == 403
