"""The demo shop's order system (seed_demo's `lookup_order` and `cancel_order` tools call it):
served only with DEBUG on, so a development checkout shows a tool call end to end."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from agents.models import Agent, Tool

DEMO_ORDERS = {
    "1001": {"status": "shipped", "carrier": "DHL", "tracking": "JD014600003", "eta": "in 2 days", "total": "34.90"},
    "1002": {"status": "processing", "carrier": "", "tracking": "", "eta": "ships tomorrow", "total": "12.50"},
    "1003": {"status": "delivered", "carrier": "Poste Italiane", "tracking": "RR123", "eta": "", "total": "58.00"},
}


def _order(order_id: str) -> dict:
    if not settings.DEBUG:
        raise Http404
    order = DEMO_ORDERS.get(order_id)
    if order is None:
        raise Http404("No such order")
    return {"order_id": order_id, **order}


@require_GET
def demo_order(request: HttpRequest, order_id: str) -> JsonResponse:
    return JsonResponse(_order(order_id))


@csrf_exempt  # called by the bot's HTTP tool, not by a browser form
@require_POST
def cancel_demo_order(request: HttpRequest, order_id: str) -> JsonResponse:
    order = _order(order_id)
    if order["status"] != "processing":
        return JsonResponse({"order_id": order_id, "cancelled": False, "reason": f"already {order['status']}"})
    return JsonResponse({"order_id": order_id, "cancelled": True})


# --- seed_demo: the tools and agents of the demo shop.

DEMO_MARK = "Demo: "
_ORDER_ID = {"type": "string", "pattern": "^[0-9]{4,10}$", "description": "The order number, digits only."}


def load_demo_agents(*, base_url: str) -> list[Agent]:
    """A triage agent (the entry agent) that hands over to billing and shipping specialists; the
    shipping agent looks orders up and cancels them (after the customer confirms). Replaces an
    earlier demo set."""
    remove_demo_agents()
    host = urlsplit(base_url).hostname or "localhost"
    lookup = Tool.objects.create(
        name="lookup_order",
        description=DEMO_MARK + "Look up an order of the tea shop by its number: status, carrier, tracking, ETA.",
        parameters={"type": "object", "properties": {"order_id": _ORDER_ID}, "required": ["order_id"]},
        url_template=f"{base_url}/demo/orders/{{order_id}}/",
        allowed_hosts=[host],
        result_fields=["order_id", "status", "carrier", "tracking", "eta"],
        max_result_chars=500,
    )
    cancel = Tool.objects.create(
        name="cancel_order",
        description=DEMO_MARK + "Cancel an order that has not shipped yet.",
        parameters={"type": "object", "properties": {"order_id": _ORDER_ID}, "required": ["order_id"]},
        method=Tool.Method.POST,
        url_template=f"{base_url}/demo/orders/{{order_id}}/cancel/",
        allowed_hosts=[host],
        changes_something=True,
    )
    shop = "You work for a small online tea shop. Be brief and friendly."
    billing = Agent.objects.create(
        name="billing",
        description=DEMO_MARK + "payments, refunds, invoices, prices.",
        instructions=f"{shop} You are the billing specialist: payments, refunds, invoices and prices. "
        "Hand anything else back to triage.",
    )
    shipping = Agent.objects.create(
        name="shipping",
        description=DEMO_MARK + "where an order is, delivery times, cancelling an order.",
        instructions=f"{shop} You are the shipping specialist. Look orders up with lookup_order (ask for the "
        "order number if you do not have it). Cancel with cancel_order only when the customer asks, after "
        "telling them exactly what you will cancel. Hand anything else back to triage.",
    )
    shipping.tools.set([lookup, cancel])
    triage = Agent.objects.create(
        name="triage",
        description=DEMO_MARK + "the first contact; routes to a specialist.",
        instructions=f"{shop} You are the first contact. Answer general questions yourself; hand questions "
        "about payments or refunds to billing and about orders and deliveries to shipping.",
        # Staff's own entry agent, if there is one, stays the entry agent.
        is_entry=not Agent.objects.filter(is_entry=True).exists(),
    )
    triage.handoffs.set([billing, shipping])
    billing.handoffs.set([triage])
    shipping.handoffs.set([triage])
    return [triage, billing, shipping]


def remove_demo_agents() -> int:
    """Delete the demo tools and agents (recognised by their description); how many."""
    agents, _ = Agent.objects.filter(description__startswith=DEMO_MARK).delete()
    tools, _ = Tool.objects.filter(description__startswith=DEMO_MARK).delete()
    return agents + tools
