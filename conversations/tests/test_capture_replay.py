import json

import pytest
from django.core.management import CommandError, call_command

from conversations.models import CapturedWebhook, Message
from conversations.services.captures import purge_expired_captures

from .helpers import meta_body, post_meta, post_twilio, twilio_params

pytestmark = pytest.mark.django_db


@pytest.fixture
def capture_on(settings):
    settings.WEBHOOK_CAPTURE_HOURS = 24
    return settings


@pytest.fixture
def live_app(live_server, fake_providers):
    fake_providers.add_passthru(live_server.url)
    return live_server.url


def test_nothing_is_captured_by_default(client, graph_ok):
    post_meta(client, meta_body("text"))

    assert not CapturedWebhook.objects.exists()


def test_a_captured_request_keeps_body_and_signature_headers_but_no_cookies(client, capture_on, graph_ok):
    body = meta_body("text")
    client.cookies["sessionid"] = "secret-session"

    post_meta(client, body)

    capture = CapturedWebhook.objects.get()
    assert (capture.provider, capture.path, bytes(capture.body)) == ("meta", "/webhooks/meta/", body)
    assert set(capture.headers) <= {"Content-Type", "X-Hub-Signature-256", "User-Agent", "X-Twilio-Signature"}
    assert "secret-session" not in json.dumps(capture.headers)


# Real commits: the replay is POSTed to the live server's thread (and, replayed, delivered twice).
@pytest.mark.django_db(transaction=True)
def test_a_replay_is_resigned_and_deduplicated_unless_given_fresh_ids(client, capture_on, graph_ok, live_app, settings):
    post_meta(client, meta_body("text"))
    capture = CapturedWebhook.objects.get()
    settings.WEBHOOK_CAPTURE_HOURS = 0

    call_command("replay_webhook", capture.pk, url=live_app)
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1

    call_command("replay_webhook", capture.pk, url=live_app, fresh_ids=True)
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 2
    assert Message.objects.filter(author=Message.Author.BOT).count() == 2


# Real commits: the replay is POSTed to the live server's thread (and, replayed, delivered twice).
@pytest.mark.django_db(transaction=True)
def test_a_twilio_capture_saved_to_a_file_replays_on_a_laptop(
    client, capture_on, twilio_ok, live_app, tmp_path, settings
):
    post_twilio(client, twilio_params("whatsapp_text"))
    saved = tmp_path / "incident.json"
    call_command("replay_webhook", CapturedWebhook.objects.get().pk, save=saved)
    Message.objects.all().delete()
    settings.PUBLIC_BASE_URL = ""  # the laptop is reached at its own address

    call_command("replay_webhook", file=saved, url=live_app, fresh_ids=True)

    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    assert inbound.text == twilio_params("whatsapp_text")["Body"]


def test_an_unknown_capture_id_says_what_to_do():
    with pytest.raises(CommandError, match="--list"):
        call_command("replay_webhook", 999)


def test_captures_older_than_their_hours_are_purged(client, capture_on, graph_ok):
    post_meta(client, meta_body("text"))
    CapturedWebhook.objects.update(received_at="2020-01-01T00:00:00Z")
    post_meta(client, meta_body("text_reply_context"))

    assert purge_expired_captures() == 1
    assert CapturedWebhook.objects.count() == 1
