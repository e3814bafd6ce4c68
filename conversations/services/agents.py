"""Which agent answers a conversation, with which functions, and the hand-overs between agents.

Staff configure agents and tools in the admin (agents/); this is where a reply uses them.
Without any agent the bot is BOT_INSTRUCTIONS (or BOT_INSTRUCTIONS_FILE) with the built-in
functions, as before agents existed. An agent hands over by calling `transfer_to_<name>`: the
conversation remembers the new agent, which answers the same customer message at once with its
own instructions, model and tools (at most MAX_HANDOVERS times per reply, so two agents that
keep handing over to each other still answer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from agents.models import Agent
from agents.selectors import AgentSetup, get_agent_setup
from conversations.ai import DetailsTool, FunctionTool, ModelReply, generate_reply
from conversations.connections import release_connection
from conversations.models import Conversation, Message, ToolCall
from conversations.services.knowledge import ReplyKnowledge
from conversations.services.tools import CallContext, Outcome, http_function, recorded
from conversations.turns import Turn

MAX_HANDOVERS = 2
_NO_ARGUMENTS = {"type": "object", "properties": {}, "additionalProperties": False}


def get_answering_agent(*, conversation: Conversation, entry_agent_id: int | None) -> AgentSetup | None:
    """The agent answering the conversation now: the one it was handed to, else the entry agent
    (`agents.selectors.entry_agent_id`, read with the message); None: the default instructions."""
    agent_id = conversation.current_agent_id or entry_agent_id
    return get_agent_setup(agent_id=agent_id) if agent_id else None


def generate_agent_reply(
    *,
    inbound: Message,
    agent: AgentSetup | None,
    default_instructions: str,
    context_instructions: str,
    turns: list[Turn],
    conversation_id: str,
    knowledge: ReplyKnowledge,
    details: DetailsTool,
) -> ModelReply:
    """The answer of the conversation's agent, or of the agent it hands over to (raises
    ModelUnavailable as generate_reply does). `context_instructions` follow the agent's own."""
    spent: list[ModelReply] = []
    open_outputs: tuple[tuple[str, str], ...] = ()
    while True:
        name = agent.name if agent else ""
        knowledge.tags = agent.knowledge_tags if agent else ()
        may_hand_over = agent is not None and len(spent) < MAX_HANDOVERS
        context = CallContext(inbound=inbound, agent_name=name)
        handovers: dict[str, int] = {}
        functions = _functions(agent, context, knowledge, handovers if may_hand_over else None)
        own = agent.instructions if agent else default_instructions
        release_connection()  # while the model answers (seconds)
        answer = generate_reply(
            instructions=knowledge.instructions("\n\n".join(part for part in (own, context_instructions) if part)),
            turns=turns,
            conversation_id=conversation_id,
            details=details,
            functions=functions,
            model=agent.model if agent else "",
            open_outputs=open_outputs,
        )
        if answer.wants_human or not answer.handover or answer.handover not in handovers:
            return _combined(replace(answer, agent=name), spent)
        spent.append(answer)
        agent = get_agent_setup(agent_id=handovers[answer.handover])
        open_outputs = answer.open_outputs


def _functions(
    agent: AgentSetup | None,
    context: CallContext,
    knowledge: ReplyKnowledge,
    handovers: dict[str, int] | None,
) -> list[FunctionTool]:
    functions = [
        replace(function, run=recorded(context, function.name, _always_ok(function))) for function in knowledge.tools
    ]
    if agent is None:
        return functions
    functions += [http_function(tool, context) for tool in agent.tools]
    if handovers is None:
        return functions
    for target in agent.handoffs:
        handovers[target.transfer_name] = target.pk
        functions.append(
            FunctionTool(
                target.transfer_name,
                f"Hand the conversation to the {target.name} agent, who answers the customer next. "
                + (target.description or ""),
                _NO_ARGUMENTS,
                recorded(context, target.transfer_name, _hand_over(context.inbound, target)),
                is_handover=True,
            )
        )
    return functions


def _always_ok(function: FunctionTool) -> Callable[[dict], Outcome]:
    return lambda arguments: Outcome(ToolCall.Status.OK, function.run(arguments))


def _hand_over(inbound: Message, target: Agent) -> Callable[[dict], Outcome]:
    def run(arguments: dict) -> Outcome:
        Conversation.objects.filter(pk=inbound.conversation_id).update(current_agent_id=target.pk)
        return Outcome(ToolCall.Status.HANDOVER, f"Transferred to {target.name}.")

    return run


def _combined(answer: ModelReply, spent: list[ModelReply]) -> ModelReply:
    """The final answer, carrying the tokens (and any customer details recorded) of the calls that
    handed over to its agent, and the responses OpenAI stored for them: no reply row names those,
    so they are deleted with the other earlier calls of the turn (services/orphans.py)."""
    if not spent:
        return answer
    calls = [*spent, answer]
    handed_over = [
        response_id for call in spent for response_id in (*call.earlier_stored_response_ids, call.stored_response_id)
    ]
    return replace(
        answer,
        details=next((call.details for call in reversed(calls) if call.details is not None), None),
        input_tokens=sum(call.input_tokens or 0 for call in calls),
        output_tokens=sum(call.output_tokens or 0 for call in calls),
        cached_input_tokens=sum(call.cached_input_tokens for call in calls),
        earlier_stored_response_ids=tuple(filter(None, [*handed_over, *answer.earlier_stored_response_ids])),
    )
