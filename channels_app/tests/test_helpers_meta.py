"""A real (non-simulated) Meta conversation for tests that need one."""

from conversations.models import Message
from conversations.tests.helpers import meta_body, post_meta


def post_real_text(client) -> Message:
    post_meta(client, meta_body("text"))
    return Message.objects.get(author=Message.Author.BOT, conversation__business_address="110000000000001")
