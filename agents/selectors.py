"""Reads of the agents configuration for one reply."""

from __future__ import annotations

from dataclasses import dataclass

from agents.models import Agent, Tool


@dataclass(frozen=True)
class AgentSetup:
    """An agent as one reply uses it: its tools and the agents it may hand over to."""

    id: int
    name: str
    instructions: str
    model: str
    tools: tuple[Tool, ...]
    handoffs: tuple[Agent, ...]
    knowledge_tags: tuple[str, ...]


def get_agent_setup(*, agent_id: int | None) -> AgentSetup | None:
    """The agent `agent_id` (when it still exists), else the entry agent, else None (no agents
    configured: the bot is BOT_INSTRUCTIONS alone)."""
    agents = Agent.objects.prefetch_related("handoffs", "knowledge_tags")
    agent = (agents.filter(pk=agent_id).first() if agent_id else None) or agents.filter(is_entry=True).first()
    if agent is None:
        return None
    return AgentSetup(
        id=agent.pk,
        name=agent.name,
        instructions=agent.instructions,
        model=agent.model,
        tools=tuple(Tool.objects.filter(agents=agent, is_active=True)),
        handoffs=tuple(agent.handoffs.all()),
        knowledge_tags=tuple(tag.name for tag in agent.knowledge_tags.all()),
    )
