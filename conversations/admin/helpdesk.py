"""What staff manage for the live inbox: labels and canned responses (`/shortcut` in the composer)."""

from __future__ import annotations

from django.contrib import admin

from conversations.models import CannedResponse, Label


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["name", "color"]
    search_fields = ["name"]


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    list_display = ["shortcut", "text", "updated_at"]
    search_fields = ["shortcut", "text"]
