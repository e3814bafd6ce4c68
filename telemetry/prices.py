"""What a model call costs, from the MODEL_PRICES table: one function for the budgets
(conversations/services/budgets.py), the cost shown to staff, and the cost metric."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

_PER_MILLION = Decimal(1_000_000)


def price_of(*, model: str, input_tokens: int, cached_input_tokens: int = 0, output_tokens: int) -> Decimal | None:
    """The cost of one call in MODEL_PRICE_CURRENCY (prices per million tokens); None when the
    table has no price for the model (a dated name, gpt-5-mini-2025-08-07, takes gpt-5-mini's)."""
    prices = settings.MODEL_PRICES
    key = model if model in prices else max((name for name in prices if model.startswith(name)), key=len, default="")
    if not key:
        return None
    price = prices[key]
    cached = min(cached_input_tokens, input_tokens)
    total = (
        (input_tokens - cached) * Decimal(str(price.get("input", 0)))
        + cached * Decimal(str(price.get("cached_input", price.get("input", 0))))
        + output_tokens * Decimal(str(price.get("output", 0)))
    )
    return (total / _PER_MILLION).quantize(Decimal("0.000001"))
