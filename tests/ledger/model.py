"""An in-memory reference ledger: the rules of DESIGN §4 in plain Python, no database."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

CENT = 1_000_000


@dataclass
class ModelHold:
    run_id: object
    amount: int


@dataclass
class ModelLedger:
    limit: int = 0
    remaining: int = 0
    concurrency: str = "exclusive"
    locked_run: object = None
    holds: dict = field(default_factory=dict)
    exists: bool = False

    @property
    def held(self) -> int:
        return sum(h.amount for h in self.holds.values())

    def set_budget(self, limit_cents: int, topup_cents: int | None, concurrency: str | None):
        limit, topup = limit_cents * CENT, (topup_cents or 0) * CENT
        if not self.exists:
            self.exists, self.limit = True, limit
            self.remaining = min(limit, topup or limit)
            self.concurrency = concurrency or "exclusive"
            return
        self.limit = limit
        self.remaining = max(min(self.remaining + topup, limit), self.held)
        self.concurrency = concurrency or self.concurrency

    def reserve(self, run_id, fixed: int, rate: Fraction, max_tokens: int):
        """('ok', tokens, hold) | ('locked',) | ('insufficient',)"""
        if self.concurrency == "exclusive" and self.holds and self.locked_run != run_id:
            return ("locked",)
        available = self.remaining - self.held
        if available < fixed:
            return ("insufficient",)
        tokens = max_tokens if rate == 0 else min(max_tokens, math.floor((available - fixed) / rate))
        hold = max(fixed + math.ceil(tokens * rate), 1)
        if tokens < 1 or hold > available:
            return ("insufficient",)
        return ("ok", tokens, hold)

    def add_hold(self, hold_id, run_id, amount: int) -> None:
        self.holds[hold_id] = ModelHold(run_id, amount)
        if self.concurrency == "exclusive":
            self.locked_run = run_id

    def _drop(self, hold_id) -> ModelHold:
        hold = self.holds.pop(hold_id)
        if not self.holds:
            self.locked_run = None
        return hold

    def settle(self, hold_id, realized: int) -> tuple[int, int]:
        """(charged, overrun)"""
        hold = self.holds[hold_id]
        cap = hold.amount + self.remaining - self.held
        charged = min(realized, cap)
        self._drop(hold_id)
        self.remaining -= charged
        return charged, realized - charged

    def expire(self, hold_id) -> int:
        hold = self._drop(hold_id)
        self.remaining -= hold.amount
        return hold.amount
