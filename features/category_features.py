"""Per-category candidate lists: what is trending now and what is new, as a pure fold.

The item step sends, per item, its category's inputs (``CategoryInput``): a *trend* value
(decayed views, half-life 1 h, as of the item's last event) each time it mirrors the item's
popularity, and a *new* arrival the first time a catalog event names the item in that
category. A category keeps its ``CAPACITY`` strongest trending items (values compared at
one event time through forward decay) and its ``NEWEST`` most recent arrivals, and
publishes the top ``K`` of each: candidate retrieval for "trending in your categories"
and "new arrivals" reads them from the online store.

>>> f = CategoryFold()
>>> s = f.new()
>>> _ = f.apply(s, CategoryInput("bikes", "trend", 1_000, "A", 2.0))
>>> _ = f.apply(s, CategoryInput("bikes", "trend", 1_000, "B", 5.0))
>>> _ = f.apply(s, CategoryInput("bikes", "new", 1_000, "C", 0.0))
>>> row = f.rows(s, "bikes")[0].fields
>>> row["trending"], row["new_arrivals"]
('B:5.0000,A:2.0000', 'C')
"""

from __future__ import annotations

from typing import Any, NamedTuple

from features.decay import DecayedMap
from features.definitions import CATEGORY_ITEMS
from features.store import Fields, StoreWrite

TREND_HL = 3_600_000
CAPACITY, NEWEST, K = 48, 20, 20


class CategoryInput(NamedTuple):
    category: str
    kind: str  # "trend" | "new"
    ts: int
    sku: str
    value: float  # trend: decayed views as of ts


class CategoryState:
    __slots__ = ("trend", "new", "last_ts", "dirty")

    def __init__(self) -> None:
        self.trend = DecayedMap(TREND_HL)
        self.new: dict[str, int] = {}  # sku -> first catalog time
        self.last_ts = 0
        self.dirty = False

    def __getstate__(self) -> Any:
        return (self.trend, self.new, self.last_ts, self.dirty)

    def __setstate__(self, st: Any) -> None:
        self.trend, self.new, self.last_ts, self.dirty = st


class CategoryFold:
    def __init__(self, ttl_s: int | None = None) -> None:
        self.prefix = CATEGORY_ITEMS.store_prefix
        self.ttl = CATEGORY_ITEMS.ttl_s if ttl_s is None else ttl_s

    def new(self) -> CategoryState:
        return CategoryState()

    def apply(self, s: CategoryState, x: CategoryInput) -> list[Any]:
        if x.kind == "trend":
            s.trend.set(x.sku, x.value, x.ts)
            s.trend.bound(CAPACITY, slack=8)
        elif x.sku not in s.new:
            s.new[x.sku] = x.ts
            if len(s.new) > NEWEST:
                oldest = min(s.new.items(), key=lambda kv: (kv[1], kv[0]))[0]
                del s.new[oldest]
        s.last_ts = max(s.last_ts, x.ts)
        s.dirty = True
        return []

    @staticmethod
    def touch(s: CategoryState) -> bool:
        """Mark the state changed if it holds data (a resumed shard re-fills a store that did
        not survive the restart)."""
        s.dirty = s.dirty or s.last_ts > 0
        return bool(s.dirty)

    def rows(self, s: CategoryState, category: str) -> list[StoreWrite]:
        if not s.dirty:
            return []
        s.dirty = False
        t = s.last_ts
        newest = sorted(s.new.items(), key=lambda kv: (-kv[1], kv[0]))[:K]
        row: Fields = {"trending": ",".join(f"{k}:{w:.4f}" for k, w in s.trend.top(K, t)),
                       "new_arrivals": ",".join(k for k, _ in newest), "as_of": t}
        return [StoreWrite("category", category, self.prefix, row, t, self.ttl)]
