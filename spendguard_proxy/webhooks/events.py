"""The event types the ledger emits (``sg_emit``) and a webhook may subscribe to."""

from __future__ import annotations

EVENT_TYPES = (
    "budget.threshold",
    "budget.exhausted",
    "call.cutoff",
    "hold.expired",
    "call.overrun",
)
