"""The body-size limit through the ASGI stack daphne runs, with lying or absent Content-Length."""

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator

from conversations.models import Message, ProcessedMessage

from .helpers import meta_body, meta_signature

pytestmark = pytest.mark.django_db

LIMIT = 4096


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.WEBHOOK_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT


def post_through_asgi(chunks: list[bytes], content_length: int | None) -> tuple[int, bytes]:
    from whatsbot_project.asgi import application

    body = b"".join(chunks)
    headers = [
        (b"host", b"testserver"),
        (b"content-type", b"application/json"),
        (b"x-hub-signature-256", meta_signature(body).encode()),
    ]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/meta/",
        "raw_path": b"/webhooks/meta/",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }

    async def run():
        communicator = ApplicationCommunicator(application, scope)
        for index, chunk in enumerate(chunks):
            await communicator.send_input({"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1})
        start = await communicator.receive_output(timeout=10)
        response_body = await communicator.receive_output(timeout=10)
        return start["status"], response_body.get("body", b"")

    return async_to_sync(run)()


def oversized() -> list[bytes]:
    body = meta_body("text").replace(b"opening hours", b"y" * (LIMIT * 2))
    return [body[i : i + 1000] for i in range(0, len(body), 1000)]


def test_an_oversized_body_with_honest_content_length_is_refused():
    chunks = oversized()
    status, _ = post_through_asgi(chunks, content_length=sum(map(len, chunks)))

    assert status == 413
    assert not ProcessedMessage.objects.exists()


def test_an_oversized_chunked_body_without_content_length_is_refused():
    status, _ = post_through_asgi(oversized(), content_length=None)

    assert status == 413
    assert not Message.objects.exists()


def test_an_oversized_body_with_understated_content_length_is_refused():
    status, _ = post_through_asgi(oversized(), content_length=100)

    assert status == 413
    assert not Message.objects.exists()


# Real commits: Django's ASGI handler closes old connections at request start and end.
@pytest.mark.django_db(transaction=True)
def test_a_body_under_the_limit_is_accepted_through_asgi(graph_ok):
    body = meta_body("text")
    status, content = post_through_asgi([body[:500], body[500:]], content_length=None)

    assert (status, content) == (200, b"ok")
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
