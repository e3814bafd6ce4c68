"""The simulator page and its API: write as a customer, through the real webhook."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import has_socket_permission, has_staff_permission, is_session_verified
from channels_app.tasks import deliver_simulated_webhook
from conversations.ai import is_offline
from conversations.providers import simulator

SIMULATOR_PERMISSION = "conversations.use_simulator"


def is_simulator_open_to(user: Any, *, is_verified: bool) -> bool:
    """Off unless SIMULATOR_ENABLED (on in development); then open to everyone with DEBUG, and
    in production to staff with the permission, since a simulated customer reaches the real
    model and the tools that change things."""
    return _is_open(lambda permission: has_staff_permission(user, permission, is_verified=is_verified))


def may_open_simulator_socket(scope: dict) -> bool:
    """The phone's websocket: the same rule, over the socket's user and session."""
    user, session = scope.get("user"), scope.get("session")
    return _is_open(
        lambda permission: (
            user is not None
            and user.is_authenticated
            and has_socket_permission(user.pk, getattr(session, "session_key", None), permission)
        )
    )


def _is_open(has_permission: Callable[[str], bool]) -> bool:
    if not settings.SIMULATOR_ENABLED:
        return False
    return settings.DEBUG or has_permission(SIMULATOR_PERMISSION)


class CanUseSimulator(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        if not is_simulator_open_to(request.user, is_verified=is_session_verified(request.user)):
            raise NotFound  # not 403: a simulator that is off or not yours does not exist
        return True


def simulator_page(request: HttpRequest) -> HttpResponse:
    if settings.SIMULATOR_ENABLED and not settings.DEBUG and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))  # staff log in there
    if not is_simulator_open_to(request.user, is_verified=is_session_verified(request.user)):
        raise Http404
    return render(request, "chat/simulator.html", {"is_offline": is_offline()})


class SimulatedMessageInput(serializers.Serializer):
    customer_id = serializers.RegexField(r"^SIM\.[A-Za-z0-9]{6,64}$")
    phone_number = serializers.RegexField(r"^\+?[0-9]{6,15}$")
    name = serializers.CharField(max_length=100)
    type = serializers.ChoiceField(choices=["text", "location", "button", "voice", "photo"])
    text = serializers.CharField(max_length=4096, required=False, allow_blank=False)
    file = serializers.FileField(required=False)
    latitude = serializers.FloatField(min_value=-90, max_value=90, required=False)
    longitude = serializers.FloatField(min_value=-180, max_value=180, required=False)
    place = serializers.CharField(max_length=200, required=False, allow_blank=True)

    def validate(self, data: dict) -> dict:
        needs = {"text": ["text"], "button": ["text"], "location": ["latitude", "longitude"]}.get(
            data["type"], ["file"]
        )
        missing = [field for field in needs if field not in data]
        if missing:
            raise serializers.ValidationError({field: "This field is required." for field in missing})
        if "file" in data:
            self._check_upload(data)
        return data

    def _check_upload(self, data: dict) -> None:
        upload = data["file"]
        kind = "audio" if data["type"] == "voice" else "image"
        extension = os.path.splitext(upload.name)[1].lower()
        if not simulator.UPLOAD_TYPES.get(extension, "").startswith(f"{kind}/"):
            allowed = ", ".join(e for e, t in simulator.UPLOAD_TYPES.items() if t.startswith(f"{kind}/"))
            raise serializers.ValidationError({"file": f"Send an {kind} file: {allowed}."})
        if upload.size > settings.MEDIA_MAX_BYTES[kind]:
            raise serializers.ValidationError({"file": f"Over the {settings.MEDIA_MAX_BYTES[kind]} bytes allowed."})


class SimulatedMessageView(APIView):
    """POST what a simulated customer sends; it reaches /webhooks/meta/ signed, like Meta's."""

    permission_classes = [CanUseSimulator]

    def post(self, request: Request) -> Response:
        serializer = SimulatedMessageInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        kind, content = simulator.message_content(
            action=data["type"],
            text=data.get("text", ""),
            latitude=data.get("latitude"),
            longitude=data.get("longitude"),
            place=data.get("place", ""),
            media_id=simulator.store_upload(data["file"]) if "file" in data else "",
        )
        message_id = simulator.new_message_id()
        body = simulator.build_message_body(
            message_id=message_id,
            customer_id=data["customer_id"],
            phone_number=data["phone_number"],
            name=data["name"],
            kind=kind,
            content=content,
        )
        deliver_simulated_webhook.delay(body.decode())
        return Response({"id": message_id}, status=202)
