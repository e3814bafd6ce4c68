from django.urls import path

from conversations import api

urlpatterns = [
    path("conversations/", api.ConversationListApi.as_view(), name="inbox-conversations"),
    path("conversations/counts/", api.ConversationCountsApi.as_view(), name="inbox-counts"),
    path("search/", api.SearchApi.as_view(), name="inbox-search"),
    path("setup/", api.InboxSetupApi.as_view(), name="inbox-setup"),
    path("conversations/<int:conversation_id>/", api.ConversationDetailApi.as_view(), name="inbox-conversation"),
    path("conversations/<int:conversation_id>/messages/", api.MessageListApi.as_view(), name="inbox-messages"),
    path("conversations/<int:conversation_id>/takeover/", api.TakeOverApi.as_view(), name="inbox-takeover"),
    path("conversations/<int:conversation_id>/handback/", api.HandBackApi.as_view(), name="inbox-handback"),
    path("conversations/<int:conversation_id>/send/", api.SendMessageApi.as_view(), name="inbox-send"),
    path("conversations/<int:conversation_id>/template/", api.SendTemplateApi.as_view(), name="inbox-template"),
    path("conversations/<int:conversation_id>/read/", api.MarkReadApi.as_view(), name="inbox-read"),
    path("contacts/<int:contact_id>/", api.ContactApi.as_view(), name="inbox-contact"),
    path("contacts/<int:contact_id>/merge/", api.ContactMergeApi.as_view(), name="inbox-contact-merge"),
    path("contacts/<int:contact_id>/messages/", api.ContactMessageApi.as_view(), name="contact-messages"),
    path("identities/<int:identity_id>/split/", api.IdentitySplitApi.as_view(), name="inbox-identity-split"),
    path("conversations/<int:conversation_id>/assign/", api.AssignApi.as_view(), name="inbox-assign"),
    path("conversations/<int:conversation_id>/resolve/", api.ResolveApi.as_view(), name="inbox-resolve"),
    path("conversations/<int:conversation_id>/reopen/", api.ReopenApi.as_view(), name="inbox-reopen"),
    path("conversations/<int:conversation_id>/snooze/", api.SnoozeApi.as_view(), name="inbox-snooze"),
    path("conversations/<int:conversation_id>/labels/", api.LabelsApi.as_view(), name="inbox-labels"),
    path("conversations/<int:conversation_id>/file/", api.SendFileApi.as_view(), name="inbox-file"),
    path("conversations/<int:conversation_id>/typing/", api.TypingApi.as_view(), name="inbox-typing"),
    path("conversations/<int:conversation_id>/notes/", api.PrivateNoteApi.as_view(), name="inbox-note"),
]
