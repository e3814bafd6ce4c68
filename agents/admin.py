"""Tools and agents in the admin: a tool's configuration is checked before it is saved."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from agents.models import Agent, Tool
from agents.tools import check_tool

# What check_tool reads of a tool.
_CHECKED = ["parameters", "url_template", "headers", "secret_headers", "allowed_hosts", "result_fields"]


class ToolForm(forms.ModelForm):
    class Meta:
        model = Tool
        fields = [
            "name",
            "description",
            "parameters",
            "method",
            "url_template",
            "headers",
            "secret_headers",
            "timeout_seconds",
            "allowed_hosts",
            "result_fields",
            "max_result_chars",
            "changes_something",
            "is_active",
        ]

    def clean(self) -> dict:
        data = super().clean()
        if all(name in data for name in _CHECKED):  # a field that failed on its own is reported already
            check_tool(Tool(**{name: data[name] for name in _CHECKED}))
        return data


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    form = ToolForm
    list_display = ["name", "method", "url_template", "changes_something", "is_active", "updated_at"]
    list_filter = ["is_active", "changes_something"]
    search_fields = ["name", "description"]


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "is_entry", "model", "tool_list", "handoff_list", "updated_at"]
    filter_horizontal = ["tools", "handoffs", "knowledge_tags"]
    search_fields = ["name", "instructions"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tools", "handoffs")

    @admin.display(description="tools")
    def tool_list(self, agent: Agent) -> str:
        return ", ".join(tool.name for tool in agent.tools.all())

    @admin.display(description="hands over to")
    def handoff_list(self, agent: Agent) -> str:
        return ", ".join(other.name for other in agent.handoffs.all())
