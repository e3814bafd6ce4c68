from django.urls import path

from conversations import webhooks

urlpatterns = [
    path("meta/", webhooks.MetaWebhookView.as_view(), name="meta-webhook"),
    path("twilio/", webhooks.TwilioInboundView.as_view(), name="twilio-webhook"),
    path("twilio/status/", webhooks.TwilioStatusView.as_view(), name="twilio-status-webhook"),
]
