"""Scoring of candidates (thin flow heuristic; the online-learning issue replaces it).

>>> rank([("A", 1.0), ("B", 3.0), ("C", 3.0)], k=2)
[('B', 3.0), ('C', 3.0)]
"""

from __future__ import annotations

from operator import itemgetter

MODEL_VERSION = "heuristic-recent-interest-v1"


def rank(candidates: list[tuple[str, float]], k: int) -> list[tuple[str, float]]:
    """Top ``k`` by score, ties broken by sku so the order is deterministic (two C-level
    stable sorts; linear on an already ranked list)."""
    return sorted(sorted(candidates), key=_SCORE, reverse=True)[:k]


_SCORE = itemgetter(1)
