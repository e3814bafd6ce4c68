from django.urls import path

from conversations.media import views

urlpatterns = [
    path("<uuid:message_uid>/<int:attachment_id>/", views.serve_attachment, name="staff-attachment"),
]
