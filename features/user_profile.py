"""Per-user online features for the thin flow: decayed interest in recent items.

The state is small and bounded (at most ``MAX_ITEMS`` items and ``MAX_PURCHASED``
purchases), so Bytewax snapshots stay cheap.

>>> p = UserProfile()
>>> p = apply(p, "page_view", ("A",), 1_000)
>>> p = apply(p, "add_to_cart", ("B",), 2_000)
>>> p = apply(p, "order", ("B",), 3_000)
>>> [sku for sku, _ in top_interests(p, 3_000, 5)], p.purchased, p.n_events
(['B', 'A'], ['B'], 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from features.decay import add, value_at

HALF_LIFE_MS = 6 * 3600 * 1000
MAX_ITEMS = 32
MAX_PURCHASED = 32
WEIGHTS = {"page_view": 1.0, "click": 1.0, "add_to_cart": 3.0, "order": 5.0}


@dataclass(slots=True)
class UserProfile:
    interest: dict[str, tuple[float, int]] = field(default_factory=dict)
    purchased: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    last_ts: int = 0
    n_events: int = 0


def apply(p: UserProfile, kind: str, skus: tuple[str, ...], ts: int,
          half_life_ms: float = HALF_LIFE_MS) -> UserProfile:
    """Fold one interaction (event type, the skus it touched, event time) into ``p``."""
    w = WEIGHTS.get(kind, 0.0)
    for sku in skus:
        p.interest[sku] = add(p.interest.get(sku, (0.0, ts)), w, ts, half_life_ms)
        if kind == "order":
            if sku in p.purchased:
                p.purchased.remove(sku)
            p.purchased.append(sku)
    if len(p.purchased) > MAX_PURCHASED:
        del p.purchased[: len(p.purchased) - MAX_PURCHASED]
    if len(p.interest) > MAX_ITEMS:
        now = max(ts, p.last_ts)
        keep = sorted(p.interest.items(), key=lambda kv: -value_at(kv[1], now, half_life_ms))
        p.interest = dict(keep[:MAX_ITEMS])
    p.counts[kind] = p.counts.get(kind, 0) + 1
    p.last_ts = max(p.last_ts, ts)
    p.n_events += 1
    return p


def top_interests(p: UserProfile, now: int, k: int,
                  half_life_ms: float = HALF_LIFE_MS) -> list[tuple[str, float]]:
    """Items by decayed interest as of ``now``, strongest first (ties by sku)."""
    scored = [(sku, value_at(c, now, half_life_ms)) for sku, c in p.interest.items()]
    scored.sort(key=lambda x: (-x[1], x[0]))
    return scored[:k]


def feature_row(p: UserProfile, now: int) -> dict[str, str | int | float]:
    """The user's features as flat fields for the online store."""
    recent = top_interests(p, now, 10)
    return {
        "recent_items": ",".join(s for s, _ in recent),
        "n_events": p.n_events,
        "n_views": p.counts.get("page_view", 0) + p.counts.get("click", 0),
        "n_carts": p.counts.get("add_to_cart", 0),
        "n_orders": p.counts.get("order", 0),
        "last_ts": p.last_ts,
    }
