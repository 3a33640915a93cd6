"""Item-to-item co-visitation: a bounded, decayed neighbour list per item.

Pairs come from the user step (items co-visited within a session window). Each item keeps
at most ``CAPACITY`` candidate neighbours per relation with the space-saving rule (a new
neighbour replaces the weakest and inherits its weight), so memory is O(items), never
O(items²); the top ``K`` are published.

>>> f = CovisFold()
>>> s = f.new()
>>> for b in "BBBC": _ = f.apply(s, ("A", b, "vv", 1_000))
>>> f.rows(s, "A")[0].fields["view_view"]
'B:3.0000,C:1.0000'
"""

from __future__ import annotations

from typing import Any

from features.decay import DecayedMap
from features.definitions import ITEM_COVISITATION
from features.store import Fields, StoreWrite

HL = 7 * 24 * 3_600_000
CAPACITY = 24
K = 10


def add_capped(m: DecayedMap, key: str, amount: float, ts: int, cap: int) -> None:
    """Space-saving insert: a new key past ``cap`` replaces the weakest, inheriting it."""
    if key not in m.w and len(m.w) >= cap:
        weakest = min(m.w.items(), key=lambda kv: (kv[1], kv[0]))
        del m.w[weakest[0]]
        m.add(key, 0.0, ts)
        m.w[key] = weakest[1]
    m.add(key, amount, ts)


class CovisState:
    __slots__ = ("vv", "vb", "last_ts", "dirty")

    def __init__(self) -> None:
        self.vv = DecayedMap(HL)
        self.vb = DecayedMap(HL)
        self.last_ts = 0
        self.dirty = False

    def __getstate__(self) -> Any:
        return (self.vv, self.vb, self.last_ts, self.dirty)

    def __setstate__(self, st: Any) -> None:
        self.vv, self.vb, self.last_ts, self.dirty = st


class CovisFold:
    def __init__(self, ttl_s: int | None = None) -> None:
        self.prefix = ITEM_COVISITATION.store_prefix
        self.ttl = ITEM_COVISITATION.ttl_s if ttl_s is None else ttl_s

    def new(self) -> CovisState:
        return CovisState()

    def apply(self, s: CovisState, pair: tuple[Any, ...]) -> list[Any]:
        _, b, rel, ts = pair
        add_capped(s.vv if rel == "vv" else s.vb, b, 1.0, ts, CAPACITY)
        s.last_ts = max(s.last_ts, ts)
        s.dirty = True
        return []

    @staticmethod
    def touch(s: CovisState) -> bool:
        """Mark the state changed if it holds data (a resumed shard re-fills a store that did
        not survive the restart)."""
        s.dirty = s.dirty or s.last_ts > 0
        return bool(s.dirty)

    def rows(self, s: CovisState, sku: str) -> list[StoreWrite]:
        if not s.dirty:
            return []
        s.dirty = False
        t = s.last_ts
        row: Fields = {"view_view": ",".join(f"{k}:{w:.4f}" for k, w in s.vv.top(K, t)),
                       "view_buy": ",".join(f"{k}:{w:.4f}" for k, w in s.vb.top(K, t)),
                       "as_of": t}
        return [StoreWrite("item", sku, self.prefix, row, t, self.ttl)]
