"""Django admin for staff: lists at a constant query count, read-only messages, audited profile edits."""

import pytest

from conversations.models import AuditEntry, Conversation, Message
from profiles.models import ClientProfile

from .backoffice_data import make_conversations

pytestmark = pytest.mark.django_db

ADMIN_LISTS = [
    "/admin/conversations/conversation/",
    "/admin/conversations/conversation/?mode__exact=human&needs_human__exact=1&q=Company",
    "/admin/profiles/clientprofile/",
    "/admin/profiles/contact/",
    "/admin/conversations/auditentry/",
    "/admin/conversations/processedmessage/",
    "/admin/conversations/message/",
    "/admin/conversations/message/?q=Company",
]
# Session, user, the session's second factor, counts, the page's rows, date drill-down, the label
# filter's choices: nothing per row.
MAX_QUERIES = 10


def test_admin_list_pages_run_the_same_bounded_queries_for_10_and_200_rows(
    admin_client, admin_user, django_assert_max_num_queries
):
    """Every list against the same rows: making 200 conversations for each list on its own was
    most of the time of eight tests."""

    def queries_per_list() -> dict[str, int]:
        counts = {}
        for url in ADMIN_LISTS:
            with django_assert_max_num_queries(MAX_QUERIES, info=url) as queries:
                assert admin_client.get(url).status_code == 200, url
            counts[url] = len(queries)
        return counts

    make_conversations(10, staff=admin_user)
    with_ten = queries_per_list()
    make_conversations(190, staff=admin_user, start=10)  # more than a page of every list

    assert queries_per_list() == with_ten


def test_the_conversation_list_shows_customer_mode_preview_unread_and_delivery(admin_client, admin_user):
    make_conversations(2, staff=admin_user)

    page = admin_client.get("/admin/conversations/conversation/").content.decode()

    assert "Customer 1 (+15550000001)" in page
    assert "Staff: admin" in page
    assert "Staff note 1" in page
    assert "⚠ failed: Re-engagement message" in page


def test_the_conversation_page_lists_its_messages_in_order_read_only_with_ticks_and_failures(admin_client, admin_user):
    [conversation] = make_conversations(1, staff=admin_user)

    page = admin_client.get(f"/admin/conversations/conversation/{conversation.pk}/change/").content.decode()

    assert page.index("Question 0") < page.index("Answer 0") < page.index("Staff note 0")
    assert "✓✓ (Delivered)" in page
    assert "131047 Re-engagement message" in page
    assert 'name="messages-0-text"' not in page  # shown, not editable


def test_search_finds_conversations_by_email_and_company(admin_client, admin_user):
    make_conversations(3, staff=admin_user)

    by_email = admin_client.get("/admin/conversations/conversation/?q=customer2@example.com")
    by_company = admin_client.get("/admin/conversations/conversation/?q=%22Company 1%22")

    assert by_email.context["cl"].result_count == 1
    assert by_company.context["cl"].result_count == 1


def test_a_contact_edited_in_the_admin_is_audited_as_a_staff_edit(admin_client, admin_user):
    [conversation] = make_conversations(1, staff=admin_user)
    contact = conversation.profile.contact
    url = f"/admin/profiles/contact/{contact.pk}/change/"

    response = admin_client.post(
        url,
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "company": contact.company,
            "email": contact.email,
            "phone_number": "+19999999999",  # read-only: ignored
            "identities-TOTAL_FORMS": "1",
            "identities-INITIAL_FORMS": "1",
            "audit_entries-TOTAL_FORMS": "0",
            "audit_entries-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    contact.refresh_from_db()
    assert (contact.first_name, contact.last_name, contact.phone_number) == ("Ada", "Lovelace", "+15550000000")
    entry = AuditEntry.objects.get(action="contact.edited_by_staff")
    assert (entry.actor, entry.contact, entry.detail) == (admin_user, contact, {"fields": ["first_name", "last_name"]})
    assert "contact.edited_by_staff" in admin_client.get(url).content.decode()


def test_processed_message_ids_are_read_only(admin_client, admin_user):
    make_conversations(1, staff=admin_user)
    from conversations.models import ProcessedMessage

    processed = ProcessedMessage.objects.get()
    page = admin_client.get(f"/admin/conversations/processedmessage/{processed.pk}/change/")

    assert page.status_code == 200
    assert b'name="provider_message_id"' not in page.content
    assert admin_client.post(f"/admin/conversations/processedmessage/{processed.pk}/delete/").status_code == 403
    assert ProcessedMessage.objects.count() == 1


def test_staff_cannot_add_conversations_or_profiles_by_hand(admin_client):
    assert admin_client.get("/admin/conversations/conversation/add/").status_code == 403
    assert admin_client.get("/admin/profiles/clientprofile/add/").status_code == 403
    assert Conversation.objects.count() == ClientProfile.objects.count() == Message.objects.count() == 0
