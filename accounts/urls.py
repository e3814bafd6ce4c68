from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("verify/", views.verify, name="verify"),
    path("two-factor/", views.two_factor, name="two-factor"),
    path("sessions/end-others/", views.end_sessions, name="end-sessions"),
]
