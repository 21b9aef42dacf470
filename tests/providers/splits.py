"""Hypothesis strategy cutting a byte stream at random points (as in mitmproxy's http fuzz)."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import strategies as st


def chunkings(data: bytes, max_cuts: int = 40) -> st.SearchStrategy[list[bytes]]:
    cuts = st.lists(st.integers(min_value=0, max_value=len(data)), max_size=max_cuts)
    return cuts.map(lambda points: _cut(data, points))


def _cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *sorted(points), len(data)]
    return [data[a:b] for a, b in pairwise(edges)]


def every_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]
