"""Per-item decayed popularity (views, carts, orders) in event time.

>>> s = ItemPopularity()
>>> s = apply(s, "page_view", 1, 0)
>>> s = apply(s, "order", 2, 0)
>>> round(score(s, 0), 2), s.n_events
(11.0, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

from features.decay import add, value_at

HALF_LIFE_MS = 24 * 3600 * 1000
WEIGHTS = {"page_view": 1.0, "click": 1.0, "add_to_cart": 3.0, "order": 5.0}


@dataclass(slots=True)
class ItemPopularity:
    views: tuple[float, int] = (0.0, 0)
    carts: tuple[float, int] = (0.0, 0)
    orders: tuple[float, int] = (0.0, 0)
    n_events: int = 0
    last_ts: int = 0


def apply(s: ItemPopularity, kind: str, quantity: int, ts: int,
          half_life_ms: float = HALF_LIFE_MS) -> ItemPopularity:
    if kind in ("page_view", "click"):
        s.views = add(s.views, 1.0, ts, half_life_ms)
    elif kind == "add_to_cart":
        s.carts = add(s.carts, float(quantity), ts, half_life_ms)
    elif kind == "order":
        s.orders = add(s.orders, float(quantity), ts, half_life_ms)
    s.n_events += 1
    s.last_ts = max(s.last_ts, ts)
    return s


def score(s: ItemPopularity, now: int, half_life_ms: float = HALF_LIFE_MS) -> float:
    return (WEIGHTS["page_view"] * value_at(s.views, now, half_life_ms)
            + WEIGHTS["add_to_cart"] * value_at(s.carts, now, half_life_ms)
            + WEIGHTS["order"] * value_at(s.orders, now, half_life_ms))


def feature_row(s: ItemPopularity, now: int) -> dict[str, str | int | float]:
    return {
        "popularity": round(score(s, now), 6),
        "views": round(value_at(s.views, now, HALF_LIFE_MS), 6),
        "carts": round(value_at(s.carts, now, HALF_LIFE_MS), 6),
        "orders": round(value_at(s.orders, now, HALF_LIFE_MS), 6),
        "n_events": s.n_events,
        "last_ts": s.last_ts,
    }
