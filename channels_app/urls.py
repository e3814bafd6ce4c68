from django.urls import path

from channels_app import views

urlpatterns = [path("", views.live_inbox, name="live-inbox")]
