"""The staff API: one view per operation, each with its own input and output.

The live inbox calls it through the staff session (DRF's SessionAuthentication enforces CSRF on
every state-changing request); other systems with an API token (integrations/auth.py) that
holds the view's `required_scope`. Each view also names the permission it needs in
`required_permission`, checked on every request for a session and for a token's staff member
(accounts/access.py). Documented at /api/docs/ (drf-spectacular).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import has_staff_permission, is_session_verified
from conversations.models import Channel
from conversations.selectors.contacts import get_contact_for_inbox
from conversations.selectors.inbox import (
    VIEWS,
    InboxFilters,
    InboxRow,
    count_conversations_by_view,
    get_conversation_for_inbox,
    list_active_staff,
    list_canned_responses,
    list_conversations_for_inbox,
    list_labels,
    list_messages_for_inbox,
    list_tool_calls_for_replies,
)
from conversations.selectors.search import search_conversations, search_messages
from conversations.serializers import (
    CannedResponseSerializer,
    ContactDetailSerializer,
    ConversationSerializer,
    LabelSerializer,
    MessageSerializer,
    StaffSerializer,
)
from conversations.services.contacts import merge_contacts, split_identity
from conversations.services.profiles import update_contact_by_staff
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
    send_to_contact,
    set_conversation_labels,
    show_staff_typing,
    snooze_conversation,
    take_over_conversation,
    unsnooze_conversation,
)

# Token scopes (integrations.models.Scope): the permission checks a token against these.
READ_CONVERSATIONS = "read_conversations"
SEND_MESSAGES = "send_messages"
TAKE_OVER = "take_over"
MANAGE_CONTACTS = "manage_contacts"

# WhatsApp's limit for one text message; longer staff answers are refused, not split.
MAX_STAFF_MESSAGE_CHARS = 4096


class InboxApi(APIView):
    def finalize_response(self, request: Request, response: HttpResponseBase, *args, **kwargs) -> HttpResponseBase:
        """DRF's response, view and request refer to one another, so what the response holds is
        freed by a pass of the cyclic garbage collector, not when the request ends: for a 200-row
        page ~1,400 objects, whose full collections were the p99 of the list (bench/inbox.py).
        Once the body is rendered, the response lets its data go."""
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response):
            response.add_post_render_callback(_forget_data)
        return response

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, StaffActionRefused):
            return Response({"code": exc.code, "detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        if isinstance(exc, ObjectDoesNotExist):
            exc = NotFound()
        if isinstance(exc, DjangoValidationError):
            exc = ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})
        return super().handle_exception(exc)


def _forget_data(response: Response) -> None:
    response.data = None


def _rows_json(rows: list[InboxRow]) -> list[dict]:
    """Inbox rows as JSON values in a plain list: a many=True serializer's `.data` is a list that
    refers back to its serializer, which holds the rows (a cycle again)."""
    return ConversationSerializer(many=True).to_representation(rows)


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

    required_scope = READ_CONVERSATIONS
    required_permission = "conversations.view_conversation"

    class InputSerializer(FiltersSerializer):
        limit = serializers.IntegerField(min_value=1, max_value=500, default=200)
        before = serializers.DateTimeField(required=False)
        before_id = serializers.IntegerField(min_value=1, required=False)

    @extend_schema(parameters=[InputSerializer], responses=ConversationSerializer(many=True))
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
        return Response(_rows_json(conversations))


class ConversationCountsApi(InboxApi):
    """How many conversations each triage tab holds, with the other filters applied."""

    required_scope = READ_CONVERSATIONS
    required_permission = "conversations.view_conversation"

    @extend_schema(parameters=[FiltersSerializer], responses=OpenApiTypes.OBJECT)  # {tab: count}
    def get(self, request: Request) -> Response:
        params = FiltersSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(count_conversations_by_view(viewer_id=request.user.pk, filters=params.filters()))


class SearchApi(InboxApi):
    """Contacts (name, number, email) and message text matching every word of `q`."""

    required_scope = READ_CONVERSATIONS
    required_permission = "conversations.view_conversation"

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

    @extend_schema(
        parameters=[InputSerializer],
        responses=inline_serializer(
            "SearchResults",
            {"conversations": ConversationSerializer(many=True), "messages": HitSerializer(many=True)},
        ),
    )
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
                "conversations": _rows_json(conversations),
                "messages": self.HitSerializer(search_messages(query=query), many=True).data,
            }
        )


class ConversationDetailApi(InboxApi):
    required_scope = READ_CONVERSATIONS
    required_permission = "conversations.view_conversation"

    @extend_schema(responses=ConversationSerializer)
    def get(self, request: Request, conversation_id: int) -> Response:
        return Response(_conversation(request, conversation_id))


class MessageListApi(InboxApi):
    """Messages of one conversation; `after` (the last id the page has) is how it catches up."""

    required_scope = READ_CONVERSATIONS
    required_permission = "conversations.view_message"

    class InputSerializer(serializers.Serializer):
        after = serializers.IntegerField(min_value=0, default=0)
        around = serializers.IntegerField(min_value=1, required=False)
        limit = serializers.IntegerField(min_value=1, max_value=500, default=200)

    @extend_schema(parameters=[InputSerializer], responses=MessageSerializer(many=True))
    def get(self, request: Request, conversation_id: int) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        messages = list_messages_for_inbox(
            conversation_id=conversation_id,
            after_id=params.validated_data["after"],
            around_id=params.validated_data.get("around"),
            limit=params.validated_data["limit"],
        )
        tool_calls = list_tool_calls_for_replies(messages=messages)
        return Response(MessageSerializer(messages, many=True, context={"tool_calls": tool_calls}).data)


class TakeOverApi(InboxApi):
    """Switch the conversation to human mode, held by the caller (a token: its staff member)."""

    required_scope = TAKE_OVER
    required_permission = "conversations.take_over"

    @extend_schema(request=None, responses=ConversationSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        take_over_conversation(conversation_id=conversation_id, user=request.user)
        return Response(_conversation(request, conversation_id))


class HandBackApi(InboxApi):
    required_scope = TAKE_OVER
    required_permission = "conversations.take_over"

    @extend_schema(request=None, responses=ConversationSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        hand_back_conversation(conversation_id=conversation_id, user=request.user)
        return Response(_conversation(request, conversation_id))


class AssignApi(InboxApi):
    required_permission = "conversations.assign"

    class InputSerializer(serializers.Serializer):
        assignee_id = serializers.IntegerField(min_value=1)

    def post(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assign_conversation(conversation_id=conversation_id, user=request.user, **data.validated_data)
        return Response(_conversation(request, conversation_id))


class ResolveApi(InboxApi):
    required_permission = "conversations.triage"

    def post(self, request: Request, conversation_id: int) -> Response:
        resolve_conversation(conversation_id=conversation_id, user=request.user)
        return Response(_conversation(request, conversation_id))


class ReopenApi(InboxApi):
    required_permission = "conversations.triage"

    def post(self, request: Request, conversation_id: int) -> Response:
        reopen_conversation(conversation_id=conversation_id, user=request.user)
        return Response(_conversation(request, conversation_id))


class SnoozeApi(InboxApi):
    """Snooze until `until`; `until: null` wakes the conversation."""

    required_permission = "conversations.triage"

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
    required_permission = "conversations.triage"

    class InputSerializer(serializers.Serializer):
        label_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), max_length=50)

    def put(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        set_conversation_labels(conversation_id=conversation_id, user=request.user, **data.validated_data)
        return Response(_conversation(request, conversation_id))


class PrivateNoteApi(InboxApi):
    """A note for colleagues: stored in the conversation, never sent, never shown to the model."""

    required_permission = "conversations.add_private_note"

    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(max_length=MAX_STAFF_MESSAGE_CHARS)

    def post(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        note = add_private_note(conversation_id=conversation_id, user=request.user, **data.validated_data)
        return Response(MessageSerializer(note).data, status=status.HTTP_201_CREATED)


class SendFileApi(InboxApi):
    """An image or a document (multipart `file`, optional `caption`) sent through the channel."""

    required_permission = "conversations.write"

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

    required_permission = "conversations.write"

    def post(self, request: Request, conversation_id: int) -> Response:
        shown = show_staff_typing(conversation_id=conversation_id, user=request.user)
        return Response({"shown": shown})


class InboxSetupApi(InboxApi):
    """What the page's menus offer: colleagues, labels and canned responses; and what the caller
    may do there (`actions`: {action: allowed}, PAGE_ACTIONS), read again when the page reconnects."""

    required_scope = READ_CONVERSATIONS
    required_permission = "conversations.view_conversation"

    @extend_schema(
        responses=inline_serializer(
            "InboxSetup",
            {
                "staff": StaffSerializer(many=True),
                "labels": LabelSerializer(many=True),
                "canned_responses": CannedResponseSerializer(many=True),
                "channels": serializers.ListField(child=serializers.DictField(child=serializers.CharField())),
                "actions": serializers.DictField(child=serializers.BooleanField()),
            },
        )
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "staff": StaffSerializer(list_active_staff(), many=True).data,
                "labels": LabelSerializer(list_labels(), many=True).data,
                "canned_responses": CannedResponseSerializer(list_canned_responses(), many=True).data,
                "channels": [{"value": value, "label": label} for value, label in Channel.choices],
                "actions": viewer_actions(request.user),
            }
        )


class SendMessageApi(InboxApi):
    """Write in a conversation the caller holds (within the customer's 24-hour window)."""

    required_scope = SEND_MESSAGES
    required_permission = "conversations.write"

    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(max_length=MAX_STAFF_MESSAGE_CHARS)

    @extend_schema(request=InputSerializer, responses={201: MessageSerializer})
    def post(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = send_staff_message(conversation_id=conversation_id, user=request.user, **data.validated_data)
        message.refresh_from_db()  # the send may already have run (eager tasks, fast worker)
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class TemplateSerializer(serializers.Serializer):
    name = serializers.RegexField(r"^[A-Za-z0-9_]{1,512}$")
    language = serializers.RegexField(r"^[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})?$")
    parameters = serializers.ListField(
        child=serializers.CharField(max_length=1024, trim_whitespace=False), max_length=20, default=list
    )


class SendTemplateApi(InboxApi):
    """Send an approved WhatsApp template in a conversation the caller holds."""

    required_scope = SEND_MESSAGES
    required_permission = "conversations.write"
    InputSerializer = TemplateSerializer

    @extend_schema(request=TemplateSerializer, responses={201: MessageSerializer})
    def post(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = send_template_message(conversation_id=conversation_id, user=request.user, **data.validated_data)
        message.refresh_from_db()
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class MarkReadApi(InboxApi):
    required_scope = READ_CONVERSATIONS
    required_permission = "conversations.view_conversation"

    class InputSerializer(serializers.Serializer):
        up_to_message_id = serializers.IntegerField(min_value=1)

    @extend_schema(request=InputSerializer, responses={204: None})
    def post(self, request: Request, conversation_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        mark_conversation_read(conversation_id=conversation_id, user=request.user, **data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _contact(contact_id: int) -> dict:
    return ContactDetailSerializer(get_contact_for_inbox(contact_id=contact_id)).data


class ContactApi(InboxApi):
    """A contact (a person) with their channel identities, every conversation and the contacts
    that may be the same person (suggested); staff edit the person's details."""

    required_scope = MANAGE_CONTACTS
    required_permission = "profiles.change_contact"

    class InputSerializer(serializers.Serializer):
        first_name = serializers.CharField(max_length=100, allow_blank=True, required=False)
        last_name = serializers.CharField(max_length=100, allow_blank=True, required=False)
        company = serializers.CharField(max_length=200, allow_blank=True, required=False)
        email = serializers.EmailField(allow_blank=True, required=False)

    @extend_schema(responses=ContactDetailSerializer)
    def get(self, request: Request, contact_id: int) -> Response:
        return Response(_contact(contact_id))

    @extend_schema(request=InputSerializer, responses=ContactDetailSerializer)
    def patch(self, request: Request, contact_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        update_contact_by_staff(contact_id=contact_id, user=request.user, changes=data.validated_data)
        return Response(_contact(contact_id))


class ContactMergeApi(InboxApi):
    """Merge another contact (`contact_id`) into this one: its identities, conversations and
    history move here (audited; undone by splitting the identities out again)."""

    required_scope = MANAGE_CONTACTS
    required_permission = "profiles.change_contact"

    class InputSerializer(serializers.Serializer):
        contact_id = serializers.IntegerField(min_value=1)

    @extend_schema(request=InputSerializer, responses=ContactDetailSerializer)
    def post(self, request: Request, contact_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        merge_contacts(target_id=contact_id, source_id=data.validated_data["contact_id"], user=request.user)
        return Response(_contact(contact_id))


class IdentitySplitApi(InboxApi):
    """Take one channel identity out of its contact, into a new contact (returned); 400 for a
    contact's only identity."""

    required_scope = MANAGE_CONTACTS
    required_permission = "profiles.change_contact"

    @extend_schema(request=None, responses={201: ContactDetailSerializer})
    def post(self, request: Request, identity_id: int) -> Response:
        contact = split_identity(identity_id=identity_id, user=request.user)
        return Response(_contact(contact.pk), status=status.HTTP_201_CREATED)


class ContactMessageApi(InboxApi):
    """Send a message or an approved template to a contact, in their latest open conversation
    on any channel, whoever holds it: a text only within the customer's 24-hour window (409
    `window_closed` outside it), a template at any time."""

    required_scope = SEND_MESSAGES
    required_permission = "conversations.write"

    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(max_length=MAX_STAFF_MESSAGE_CHARS, required=False)
        template = TemplateSerializer(required=False)

        def validate(self, data: dict) -> dict:
            if ("text" in data) == ("template" in data):
                raise serializers.ValidationError("Send either `text` or `template`.")
            return data

    @extend_schema(request=InputSerializer, responses={201: MessageSerializer})
    def post(self, request: Request, contact_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = send_to_contact(contact_id=contact_id, user=request.user, **data.validated_data)
        message.refresh_from_db()
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


# The live inbox's actions, each by the permission of the view that does it: the page offers only
# those its viewer may do (channels_app: the page's context and the socket's `permissions` event).
PAGE_ACTIONS = {
    "take_over": TakeOverApi.required_permission,  # and hand back
    "write": SendMessageApi.required_permission,  # replies, files, templates
    "assign": AssignApi.required_permission,
    "triage": ResolveApi.required_permission,  # resolve, reopen, snooze, labels
    "add_private_note": PrivateNoteApi.required_permission,
    "change_contact": ContactApi.required_permission,  # edit, merge, split
}


def viewer_actions(user: Any) -> dict[str, bool]:
    """{action: allowed} of PAGE_ACTIONS for the user of this request, as the API would decide."""
    verified = is_session_verified(user)
    return {
        action: has_staff_permission(user, permission, is_verified=verified)
        for action, permission in PAGE_ACTIONS.items()
    }
