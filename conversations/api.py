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

from conversations.selectors.inbox import (
    get_conversation_for_inbox,
    list_conversations_for_inbox,
    list_messages_for_inbox,
    list_tool_calls_for_replies,
)
from conversations.serializers import ConversationSerializer, MessageSerializer, ProfileSerializer
from conversations.services.profiles import update_profile_by_staff
from conversations.services.staff import (
    StaffActionRefused,
    hand_back_conversation,
    mark_conversation_read,
    send_staff_message,
    send_template_message,
    take_over_conversation,
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


def _conversation(conversation_id: int) -> dict:
    return ConversationSerializer(get_conversation_for_inbox(conversation_id=conversation_id)).data


class ConversationListApi(InboxApi):
    class InputSerializer(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=500, default=200)

    def get(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        conversations = list_conversations_for_inbox(limit=params.validated_data["limit"])
        return Response(ConversationSerializer(conversations, many=True).data)


class ConversationDetailApi(InboxApi):
    def get(self, request: Request, conversation_id: int) -> Response:
        return Response(_conversation(conversation_id))


class MessageListApi(InboxApi):
    """Messages of one conversation; `after` (the last id the page has) is how it catches up."""

    class InputSerializer(serializers.Serializer):
        after = serializers.IntegerField(min_value=0, default=0)
        limit = serializers.IntegerField(min_value=1, max_value=500, default=200)

    def get(self, request: Request, conversation_id: int) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        messages = list_messages_for_inbox(
            conversation_id=conversation_id,
            after_id=params.validated_data["after"],
            limit=params.validated_data["limit"],
        )
        tool_calls = list_tool_calls_for_replies(messages=messages)
        return Response(MessageSerializer(messages, many=True, context={"tool_calls": tool_calls}).data)


class TakeOverApi(InboxApi):
    def post(self, request: Request, conversation_id: int) -> Response:
        take_over_conversation(conversation_id=conversation_id, user=request.user)
        return Response(_conversation(conversation_id))


class HandBackApi(InboxApi):
    def post(self, request: Request, conversation_id: int) -> Response:
        hand_back_conversation(conversation_id=conversation_id, user=request.user)
        return Response(_conversation(conversation_id))


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
        mark_conversation_read(conversation_id=conversation_id, **data.validated_data)
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
