"""The live inbox's HTTP API: one view per operation, each with its own input and output.

Staff only (IsAdminUser) through the session; DRF's SessionAuthentication enforces CSRF on
every state-changing request.
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.models import Channel
from conversations.selectors.inbox import (
    VIEWS,
    InboxFilters,
    count_conversations_by_view,
    get_conversation_for_inbox,
    list_active_staff,
    list_canned_responses,
    list_conversations_for_inbox,
    list_labels,
    list_messages_for_inbox,
)
from conversations.selectors.search import search_conversations, search_messages
from conversations.serializers import (
    CannedResponseSerializer,
    ConversationSerializer,
    LabelSerializer,
    MessageSerializer,
    ProfileSerializer,
    StaffSerializer,
)
from conversations.services.profiles import update_profile_by_staff
from conversations.services.staff import (
    StaffActionRefused,
    add_private_note,
    assign_conversation,
    hand_back_conversation,
    mark_conversation_read,
    reopen_conversation,
    resolve_conversation,
    send_staff_file,
    send_staff_message,
    send_template_message,
    set_conversation_labels,
    show_staff_typing,
    snooze_conversation,
    take_over_conversation,
    unsnooze_conversation,
)

# WhatsApp's limit for one text message; longer staff answers are refused, not split.
MAX_STAFF_MESSAGE_CHARS = 4096


class InboxApi(APIView):
    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, StaffActionRefused):
            return Response({"code": exc.code, "detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        if isinstance(exc, ObjectDoesNotExist):
            exc = NotFound()
        return super().handle_exception(exc)


def _conversation(request: Request, conversation_id: int) -> dict:
    conversation = get_conversation_for_inbox(conversation_id=conversation_id, viewer_id=request.user.pk)
    return ConversationSerializer(conversation).data


class FiltersSerializer(serializers.Serializer):
    view = serializers.ChoiceField(choices=VIEWS, default="all")
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    agent = serializers.RegexField(r"^(bot|[0-9]{1,12})$", required=False)
    label = serializers.IntegerField(min_value=1, required=False)
    since = serializers.DateField(required=False)
    until = serializers.DateField(required=False)

    def filters(self) -> InboxFilters:
        data = self.validated_data
        return InboxFilters(
            view=data["view"],
            channel=data.get("channel", ""),
            agent=data.get("agent", ""),
            label_id=data.get("label"),
            since=data.get("since"),
            until=data.get("until"),
        )


class ConversationListApi(InboxApi):
    """One page of a triage view; `before` + `before_id` (the last row's updated_at and id) ask
    for the next page."""

    class InputSerializer(FiltersSerializer):
        limit = serializers.IntegerField(min_value=1, max_value=500, default=200)
        before = serializers.DateTimeField(required=False)
        before_id = serializers.IntegerField(min_value=1, required=False)

    def get(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        conversations = list_conversations_for_inbox(
            limit=data["limit"],
            viewer_id=request.user.pk,
            filters=params.filters(),
            before=(data["before"], data["before_id"]) if "before" in data and "before_id" in data else None,
        )
        return Response(ConversationSerializer(conversations, many=True).data)


class ConversationCountsApi(InboxApi):
    """How many conversations each triage tab holds, with the other filters applied."""

    def get(self, request: Request) -> Response:
        params = FiltersSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(count_conversations_by_view(viewer_id=request.user.pk, filters=params.filters()))


class SearchApi(InboxApi):
    """Contacts (name, number, email) and message text matching every word of `q`."""

    class InputSerializer(serializers.Serializer):
        q = serializers.CharField(max_length=200)

    class HitSerializer(serializers.Serializer):
        message_id = serializers.IntegerField()
        conversation_id = serializers.IntegerField()
        contact_name = serializers.CharField()
        direction = serializers.CharField()
        author = serializers.CharField()
        snippet = serializers.CharField()
        created_at = serializers.CharField()

    def get(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.validated_data["q"]
        conversation_ids = search_conversations(query=query)
        conversations = list_conversations_for_inbox(
            ids=conversation_ids, limit=len(conversation_ids) or 1, viewer_id=request.user.pk
        )
        return Response(
            {
                "conversations": ConversationSerializer(conversations, many=True).data,
                "messages": self.HitSerializer(search_messages(query=query), many=True).data,
            }
        )


class ConversationDetailApi(InboxApi):
    def get(self, request: Request, conversation_id: int) -> Response:
        return Response(_conversation(request, conversation_id))


class MessageListApi(InboxApi):
    """Messages of one conversation; `after` (the last id the page has) is how it catches up."""

    class InputSerializer(serializers.Serializer):
        after = serializers.IntegerField(min_value=0, default=0)
        around = serializers.IntegerField(min_value=1, required=False)
        limit = serializers.IntegerField(min_value=1, max_value=500, default=200)

    def get(self, request: Request, conversation_id: int) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        messages = list_messages_for_inbox(
            conversation_id=conversation_id,
            after_id=params.validated_data["after"],
            around_id=params.validated_data.get("around"),
            limit=params.validated_data["limit"],
        )
        return Response(MessageSerializer(messages, many=True).data)


class TakeOverApi(InboxApi):
    def post(self, request: Request, conversation_id: int) -> Response:
        take_over_conversation(conversation_id=conversation_id, user=request.user)
        return Response(_conversation(request, conversation_id))


class HandBackApi(InboxApi):
    def post(self, request: Request, conversation_id: int) -> Response:
        hand_back_conversation(conversation_id=conversation_id, user=request.user)
        return Response(_conversation(request, conversation_id))


class AssignApi(InboxApi):
    class InputSerializer(serializers.Serializer):
        assignee_id = serializers.IntegerField(min_value=1)

    def post(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assign_conversation(conversation_id=conversation_id, user=request.user, **data.validated_data)
        return Response(_conversation(request, conversation_id))


class ResolveApi(InboxApi):
    def post(self, request: Request, conversation_id: int) -> Response:
        resolve_conversation(conversation_id=conversation_id, user=request.user)
        return Response(_conversation(request, conversation_id))


class ReopenApi(InboxApi):
    def post(self, request: Request, conversation_id: int) -> Response:
        reopen_conversation(conversation_id=conversation_id, user=request.user)
        return Response(_conversation(request, conversation_id))


class SnoozeApi(InboxApi):
    """Snooze until `until`; `until: null` wakes the conversation."""

    class InputSerializer(serializers.Serializer):
        until = serializers.DateTimeField(allow_null=True)

    def post(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        until = data.validated_data["until"]
        if until is None:
            unsnooze_conversation(conversation_id=conversation_id, user=request.user)
        else:
            snooze_conversation(conversation_id=conversation_id, user=request.user, until=until)
        return Response(_conversation(request, conversation_id))


class LabelsApi(InboxApi):
    class InputSerializer(serializers.Serializer):
        label_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), max_length=50)

    def put(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        set_conversation_labels(conversation_id=conversation_id, user=request.user, **data.validated_data)
        return Response(_conversation(request, conversation_id))


class PrivateNoteApi(InboxApi):
    """A note for colleagues: stored in the conversation, never sent, never shown to the model."""

    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(max_length=MAX_STAFF_MESSAGE_CHARS)

    def post(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        note = add_private_note(conversation_id=conversation_id, user=request.user, **data.validated_data)
        return Response(MessageSerializer(note).data, status=status.HTTP_201_CREATED)


class SendFileApi(InboxApi):
    """An image or a document (multipart `file`, optional `caption`) sent through the channel."""

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(allow_empty_file=False)
        caption = serializers.CharField(max_length=1024, required=False, default="", allow_blank=True)

    def post(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = send_staff_file(
            conversation_id=conversation_id,
            user=request.user,
            upload=data.validated_data["file"],
            caption=data.validated_data["caption"],
        )
        message.refresh_from_db()
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class TypingApi(InboxApi):
    """Staff are typing: the customer sees "typing…" where the channel shows it (the page calls
    this at most every 20 s while the holder types)."""

    def post(self, request: Request, conversation_id: int) -> Response:
        shown = show_staff_typing(conversation_id=conversation_id, user=request.user)
        return Response({"shown": shown})


class InboxSetupApi(InboxApi):
    """What the page's menus offer: colleagues, labels and canned responses."""

    def get(self, request: Request) -> Response:
        return Response(
            {
                "staff": StaffSerializer(list_active_staff(), many=True).data,
                "labels": LabelSerializer(list_labels(), many=True).data,
                "canned_responses": CannedResponseSerializer(list_canned_responses(), many=True).data,
                "channels": [{"value": value, "label": label} for value, label in Channel.choices],
            }
        )


class SendMessageApi(InboxApi):
    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(max_length=MAX_STAFF_MESSAGE_CHARS)

    def post(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = send_staff_message(conversation_id=conversation_id, user=request.user, **data.validated_data)
        message.refresh_from_db()  # the send may already have run (eager tasks, fast worker)
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class SendTemplateApi(InboxApi):
    class InputSerializer(serializers.Serializer):
        name = serializers.RegexField(r"^[A-Za-z0-9_]{1,512}$")
        language = serializers.RegexField(r"^[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})?$")
        parameters = serializers.ListField(
            child=serializers.CharField(max_length=1024, trim_whitespace=False), max_length=20, default=list
        )

    def post(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = send_template_message(conversation_id=conversation_id, user=request.user, **data.validated_data)
        message.refresh_from_db()
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class MarkReadApi(InboxApi):
    class InputSerializer(serializers.Serializer):
        up_to_message_id = serializers.IntegerField(min_value=1)

    def post(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        mark_conversation_read(conversation_id=conversation_id, user=request.user, **data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProfileUpdateApi(InboxApi):
    class InputSerializer(serializers.Serializer):
        first_name = serializers.CharField(max_length=100, allow_blank=True, required=False)
        last_name = serializers.CharField(max_length=100, allow_blank=True, required=False)
        company = serializers.CharField(max_length=200, allow_blank=True, required=False)
        email = serializers.EmailField(allow_blank=True, required=False)

    def patch(self, request: Request, profile_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        profile = update_profile_by_staff(profile_id=profile_id, user=request.user, changes=data.validated_data)
        return Response(ProfileSerializer(profile).data)
