from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path

from conversations.media.views import serve_outbound_media


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/", include("conversations.urls")),
    path("staff/attachments/", include("conversations.media.urls")),
    path("outbound-media/<str:token>/", serve_outbound_media, name="outbound-media"),
    path("healthz/", healthz),
    path("api/", include("conversations.api_urls")),
    path("", include("channels_app.urls")),
]
