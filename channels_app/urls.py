from django.urls import path

from channels_app import simulator, views, webchat

urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("live/", views.live_inbox, name="live-inbox"),
    path("simulator/", simulator.simulator_page, name="simulator"),
    path("simulator/api/messages/", simulator.SimulatedMessageView.as_view(), name="simulator-messages"),
    path("chat/", webchat.widget_page, name="webchat"),
]
