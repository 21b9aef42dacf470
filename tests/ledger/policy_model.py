"""An in-memory reference for DESIGN §11's rules: daily periods, a group over several agents,
RPM/TPM limits as GCRA — in plain Python with exact fractions, no database.

The clock is the tests'; every figure is what migration 0006's functions must answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

CENT = 1_000_000
WINDOW = timedelta(seconds=60)


def next_midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def seconds(delta: timedelta) -> Fraction:
    return Fraction(delta // timedelta(microseconds=1), 1_000_000)


@dataclass
class Pot:
    """One budget: an agent's or a group's. ``period`` is daily or none."""

    limit: int
    remaining: int
    daily: bool = False
    resets_at: datetime | None = None
    held: int = 0

    def roll(self, now: datetime) -> None:
        if self.daily and self.resets_at <= now:
            self.remaining = max(self.limit, self.held)
            self.resets_at = next_midnight(now)

    @property
    def free(self) -> int:
        return self.remaining - self.held

    def change(self, limit: int, topup: int) -> None:
        self.limit = limit
        self.remaining = max(min(self.remaining + topup, limit), self.held)


@dataclass
class Hold:
    agent: int
    amount: int
    expires_at: datetime
    tpm_tokens: int | None


@dataclass
class Agent:
    pot: Pot
    rpm: int | None = None
    tpm: int | None = None
    rpm_tat: datetime | None = None
    tpm_tat: datetime | None = None


@dataclass
class World:
    group: Pot
    agents: list[Agent]
    holds: dict = field(default_factory=dict)

    def _lock(self, agent: int, now: datetime) -> Agent:
        self.group.roll(now)
        self.agents[agent].pot.roll(now)
        return self.agents[agent]

    def _expire(self, agent: int, now: datetime) -> int:
        expired = [k for k, h in self.holds.items() if h.agent == agent and h.expires_at < now]
        for key in expired:
            hold = self.holds.pop(key)
            for pot in (self.agents[agent].pot, self.group):
                pot.remaining -= hold.amount
                pot.held -= hold.amount
        return len(expired)

    def reserve(self, agent: int, now: datetime, *, fixed: int, rate: Fraction,
                max_tokens: int, input_tokens: int, ttl: timedelta):
        """('ok', tokens, hold) | ('rate_limited', limited_by, retry_after) | ('insufficient',
        limited_by)"""
        a = self._lock(agent, now)
        self._expire(agent, now)
        rpm_start = tpm_start = None
        if a.rpm is not None:
            rpm_start = max(a.rpm_tat or now, now)
            lag = seconds(rpm_start - now) + Fraction(60, a.rpm)
            if lag > 60:
                return ("rate_limited", "rpm", max(math.ceil(lag - 60), 1))
        if a.tpm is not None:
            tpm_start = max(a.tpm_tat or now, now)
            lag = seconds(tpm_start - now)
            room = math.floor((60 - lag) * a.tpm / 60) - input_tokens
            if input_tokens + 1 > a.tpm:
                return ("rate_limited", "tpm_size", None)
            if room < 1:
                wait = lag + Fraction((input_tokens + 1) * 60, a.tpm) - 60
                return ("rate_limited", "tpm", max(math.ceil(wait), 1))
            max_tokens = min(max_tokens, room)
        room, limited_by = a.pot.free, "agent"
        if self.group.free < room:
            room, limited_by = self.group.free, "group"
        if room >= fixed and rate > 0:
            max_tokens = min(max_tokens, math.floor((room - fixed) / rate))
        hold = max(fixed + math.ceil(max_tokens * rate), 1)
        if room < fixed or max_tokens < 1 or hold > room:
            return ("insufficient", limited_by)
        tokens = input_tokens + max_tokens if a.tpm is not None else None
        return ("ok", max_tokens, hold, now + ttl, tokens, rpm_start, tpm_start)

    def add_hold(self, key, agent: int, reply) -> None:
        _, _, amount, expires_at, tokens, rpm_start, tpm_start = reply
        a = self.agents[agent]
        self.holds[key] = Hold(agent, amount, expires_at, tokens)
        a.pot.held += amount
        self.group.held += amount
        if a.rpm is not None:
            a.rpm_tat = rpm_start + timedelta(seconds=60) / a.rpm
        if a.tpm is not None:
            a.tpm_tat = tpm_start + tokens * (timedelta(seconds=60) / a.tpm)

    def settle(self, key, now: datetime, realized: int, used_tokens: int):
        """(status, charged, overrun)"""
        hold = self.holds.get(key)
        if hold is None:
            return ("late", 0, None)  # expired and charged in full before
        a = self._lock(hold.agent, now)
        del self.holds[key]
        charged = min(realized, hold.amount + min(a.pot.free, self.group.free))
        for pot in (a.pot, self.group):
            pot.remaining -= charged
            pot.held -= hold.amount
        if hold.tpm_tokens is not None and a.tpm is not None:
            a.tpm_tat -= (hold.tpm_tokens - used_tokens) * (timedelta(seconds=60) / a.tpm)
        return ("settled", charged, realized - charged)

    def sweep(self, agent: int, now: datetime) -> int:
        self._lock(agent, now)
        return self._expire(agent, now)

    def set_agent(self, agent: int, now: datetime, limit: int, topup: int) -> None:
        a = self._lock(agent, now)
        self._expire(agent, now)
        a.pot.change(limit, topup)

    def set_group(self, now: datetime, limit: int, topup: int) -> None:
        self.group.roll(now)
        self.group.change(limit, topup)
