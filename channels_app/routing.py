from django.urls import path

from channels_app.consumers import LiveInboxConsumer

websocket_urlpatterns = [path("ws/live/", LiveInboxConsumer.as_asgi())]
