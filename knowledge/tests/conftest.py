"""Knowledge base tests: the demo shop, articles written as staff would, and a fake OpenAI
Files/Vector stores API at the HTTP boundary (the openai SDK runs for real). Eager Celery, the
fake OpenAI and a per-test MEDIA_ROOT come from the root conftest.py and its plugins."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest
from werkzeug import Request, Response

from knowledge.models import Article
from knowledge.services import index_article, load_demo_knowledge

VECTOR_STORE_ID = "vs_test"


@pytest.fixture
def demo_knowledge(db):
    return load_demo_knowledge()


@pytest.fixture
def write_article(db):
    """An article saved and indexed the way the admin does it."""

    def write(*, title: str, body: str, slug: str | None = None, language: str = "en", **fields) -> Article:
        article = Article.objects.create(
            title=title, slug=slug or title.lower().replace(" ", "-"), body=body, language=language, **fields
        )
        index_article(article_id=article.pk)
        article.refresh_from_db()
        return article

    return write


@dataclass
class FakeVectorStore:
    """OpenAI's Files and Vector store files endpoints; records what the SDK sent."""

    uploads: list = field(default_factory=list)  # (file id, filename, content)
    attached: list = field(default_factory=list)  # (vector store id, file id, attributes)
    detached: list = field(default_factory=list)  # (vector store id, file id)
    deleted: list = field(default_factory=list)  # file ids

    def upload(self, request: Request) -> Response:
        upload = request.files["file"]
        file_id = f"file-{len(self.uploads) + 1}"
        self.uploads.append((file_id, upload.filename, upload.read().decode()))
        return _json(
            {
                "id": file_id,
                "object": "file",
                "bytes": 1,
                "created_at": 1767269950,
                "filename": upload.filename,
                "purpose": "assistants",
                "status": "processed",
            }
        )

    def attach(self, request: Request) -> Response:
        store = request.path.split("/")[3]
        body = json.loads(request.get_data())
        self.attached.append((store, body["file_id"], body.get("attributes")))
        return _json(
            {
                "id": body["file_id"],
                "object": "vector_store.file",
                "created_at": 1767269950,
                "vector_store_id": store,
                "status": "in_progress",
                "usage_bytes": 0,
                "last_error": None,
            }
        )

    def detach(self, request: Request) -> Response:
        _, _, _, store, _, file_id = request.path.split("/")
        self.detached.append((store, file_id))
        return _json({"id": file_id, "object": "vector_store.file.deleted", "deleted": True})

    def delete(self, request: Request) -> Response:
        file_id = request.path.rsplit("/", 1)[-1]
        self.deleted.append(file_id)
        return _json({"id": file_id, "object": "file", "deleted": True})


@pytest.fixture
def fake_vector_store(httpserver, settings):
    fake = FakeVectorStore()
    httpserver.expect_request("/v1/files", method="POST").respond_with_handler(fake.upload)
    httpserver.expect_request(re.compile(r"^/v1/vector_stores/[^/]+/files$"), method="POST").respond_with_handler(
        fake.attach
    )
    httpserver.expect_request(
        re.compile(r"^/v1/vector_stores/[^/]+/files/[^/]+$"), method="DELETE"
    ).respond_with_handler(fake.detach)
    httpserver.expect_request(re.compile(r"^/v1/files/[^/]+$"), method="DELETE").respond_with_handler(fake.delete)
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = httpserver.url_for("/v1")
    settings.KNOWLEDGE_VECTOR_STORE_ID = VECTOR_STORE_ID
    return fake


def _json(body: dict) -> Response:
    return Response(json.dumps(body), status=200, content_type="application/json")
