from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

# /healthz/, /readyz/ and /metrics are answered by ops.middleware.OperationsMiddleware, before
# the host and HTTPS checks.

urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/", include("conversations.urls")),
    path("staff/attachments/", include("conversations.media.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("conversations.api_urls")),
    path("", include("channels_app.urls")),
]
