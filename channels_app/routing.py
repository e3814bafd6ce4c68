from django.urls import path, re_path

from channels_app.chat_consumers import SimulatorConsumer, WebchatConsumer
from channels_app.consumers import LiveInboxConsumer

websocket_urlpatterns = [
    path("ws/live/", LiveInboxConsumer.as_asgi()),
    re_path(r"^ws/simulator/(?P<customer_id>SIM\.[A-Za-z0-9]{6,64})/$", SimulatorConsumer.as_asgi()),
    path("ws/chat/", WebchatConsumer.as_asgi()),
    path("ws/chat/<int:conversation_id>/", WebchatConsumer.as_asgi()),
]
