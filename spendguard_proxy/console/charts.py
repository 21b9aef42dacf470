"""Charts drawn on the server as inline SVG: no JavaScript, no chart library to ship.

Functions here turn figures into geometry (integers, a fixed palette); the templates only
place the shapes. Amounts stay integer microcents; only bar lengths are scaled.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from spendguard_proxy.console.formatting import microcents

# Colour-blind-safe (Okabe-Ito), and "other" grey.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
OTHER_COLOUR = "#999999"
SERIES_MAX = len(PALETTE)


@dataclass
class Bar:
    x: int
    y: int
    width: int
    height: int
    colour: str
    title: str


@dataclass
class StackedChart:
    width: int
    height: int
    plot_top: int
    plot_bottom: int
    bars: list[Bar] = field(default_factory=list)
    legend: list[tuple[str, str, int]] = field(default_factory=list)  # key, colour, total µ¢
    x_labels: list[tuple[int, str]] = field(default_factory=list)
    max_microcents: int = 0
    days: list[tuple[date, int]] = field(default_factory=list)  # the table behind the chart
    summary: str = ""


def stacked_by_day(
    rows: list[tuple[date, str, int]], last_day: date, *, days: int = 30
) -> StackedChart:
    """One bar per UTC day, stacked by key (provider or model); the biggest keys get colours,
    the rest is "other"."""
    first_day = last_day - timedelta(days=days - 1)
    totals: dict[str, int] = defaultdict(int)
    for _, key, spent in rows:
        totals[key] += spent
    ranked = sorted(totals, key=lambda k: (-totals[k], k))
    colours = {key: PALETTE[i] for i, key in enumerate(ranked[: SERIES_MAX - 1])}
    if len(ranked) == SERIES_MAX:
        colours[ranked[-1]] = PALETTE[-1]
    per_day: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day, key, spent in rows:
        per_day[day][key if key in colours else "other"] += spent

    width, height, top, bottom, left = 720, 220, 10, 190, 8
    slot = (width - left) // days
    day_totals = [(first_day + timedelta(days=i)) for i in range(days)]
    peak = max((sum(per_day[d].values()) for d in day_totals), default=0)
    chart = StackedChart(width, height, top, bottom, max_microcents=peak)
    for i, day in enumerate(day_totals):
        x = left + i * slot
        y = bottom
        for key in [*colours, "other"]:
            spent = per_day[day].get(key, 0)
            if not spent:
                continue
            h = max(1, round((bottom - top) * spent / peak))
            y -= h
            chart.bars.append(Bar(x + 2, y, slot - 4, h, colours.get(key, OTHER_COLOUR),
                                  f"{day.isoformat()} {key}: {microcents(spent)}"))
        chart.days.append((day, sum(per_day[day].values())))
        if i % 5 == 0 or i == days - 1:
            chart.x_labels.append((x + slot // 2, day.strftime("%m-%d")))
    chart.legend = [(k, c, totals[k]) for k, c in colours.items()]
    other = sum(v for k, v in totals.items() if k not in colours)
    if other:
        chart.legend.append(("other", OTHER_COLOUR, other))
    total = sum(totals.values())
    chart.summary = (
        f"Spend per day over {days} days, {microcents(total)} in all; highest day "
        f"{microcents(peak)}."
    )
    return chart


@dataclass
class HBar:
    label: str
    value: int
    length_pct: float
    colour: str


def horizontal(items: list[tuple[str, int]]) -> list[HBar]:
    """Bars proportional to the largest value (lengths in percent of the track)."""
    peak = max((v for _, v in items), default=0)
    return [
        HBar(label, value, round(100 * value / peak, 2) if peak > 0 else 0.0,
             PALETTE[i % len(PALETTE)])
        for i, (label, value) in enumerate(items)
    ]
