from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path

from agents.demo import cancel_demo_order, demo_order


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/", include("conversations.urls")),
    path("staff/attachments/", include("conversations.media.urls")),
    path("healthz/", healthz),
    # The demo shop's order system for seed_demo's tools: 404 unless DEBUG.
    path("demo/orders/<str:order_id>/", demo_order),
    path("demo/orders/<str:order_id>/cancel/", cancel_demo_order),
    path("api/", include("conversations.api_urls")),
    path("", include("channels_app.urls")),
]
