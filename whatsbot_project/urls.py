from django.contrib import admin
from django.urls import include, path

from agents.demo import cancel_demo_order, demo_order
from conversations.media.views import serve_outbound_media
from integrations.views import ApiDocsView, ApiSchemaView

# /healthz/, /readyz/ and /metrics are answered by ops.middleware.OperationsMiddleware, before
# the host and HTTPS checks.

urlpatterns = [
    path("admin/", admin.site.urls),
    path("account/", include("accounts.urls")),
    path("webhooks/", include("conversations.urls")),
    path("staff/attachments/", include("conversations.media.urls")),
    path("api/schema/", ApiSchemaView.as_view(), name="api-schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    # The demo shop's order system for seed_demo's tools: 404 unless DEBUG.
    path("demo/orders/<str:order_id>/", demo_order),
    path("demo/orders/<str:order_id>/cancel/", cancel_demo_order),
    path("outbound-media/<str:token>/", serve_outbound_media, name="outbound-media"),
    path("api/", include("conversations.api_urls")),
    path("", include("channels_app.urls")),
]
