import pytest
from django.core.management import call_command

from conversations.models import Channel, Conversation, Message
from profiles.models import ClientProfile, Contact

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_every_channel_a_takeover_a_failure_and_a_half_filled_profile(admin_user):
    call_command("seed_demo")

    assert set(Conversation.objects.values_list("channel", flat=True)) == set(Channel.values)
    taken = Conversation.objects.get(mode=Conversation.Mode.HUMAN)
    assert taken.assigned_to == admin_user
    failed = Message.objects.get(status=Message.Status.FAILED)
    assert (failed.error_code, failed.error_title) == ("30003", "Unreachable destination handset")
    assert Contact.objects.get(first_name="Giulia").missing_fields == ["last_name", "company", "email"]
    assert Conversation.objects.filter(needs_human=True).count() == 1


def test_seed_demo_replaces_its_data_and_removes_it_on_request(admin_user):
    real = ClientProfile.objects.create(
        contact=Contact.objects.create(phone_number="+15550000000"),
        provider="meta",
        external_id="US.real",
        phone_number="+15550000000",
    )

    call_command("seed_demo")
    call_command("seed_demo")
    assert ClientProfile.objects.exclude(pk=real.pk).count() == 4

    call_command("seed_demo", remove=True)
    assert list(ClientProfile.objects.all()) == [real]
    assert list(Contact.objects.all()) == [real.contact]
