"""The staff API's schema and its browsable docs, for staff who may read conversations."""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView


class ApiSchemaView(SpectacularAPIView):
    required_permission = "conversations.view_conversation"


class ApiDocsView(SpectacularSwaggerSplitView):
    required_permission = "conversations.view_conversation"
