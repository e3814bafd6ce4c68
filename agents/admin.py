"""Tools and agents in the admin: a tool's configuration is checked before it is saved."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from agents.models import Agent, Tool
from agents.tools import check_tool


class ToolForm(forms.ModelForm):
    class Meta:
        model = Tool
        fields = "__all__"

    def clean(self) -> dict:
        data = super().clean()
        check_tool(Tool(**{name: value for name, value in data.items() if name != "agents"}))
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
