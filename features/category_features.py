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

from features.covisitation import add_capped
from features.decay import DecayedMap
from features.definitions import CATEGORY_ITEMS, POPULAR_ITEMS
from features.store import Fields, StoreWrite

TREND_HL = 3_600_000
# the popular list's half-life: a long memory (the catalog's best sellers); what is hot in the
# last hours is the item popularity row's (24 h) and the trending lists' (1 h) part
POP_HL = 365 * 24 * TREND_HL
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


# ---------------------------------------------------------------------- popular items

ALL = "*"  # the popular list's one row (another view than a category named "*")
POP_CAPACITY, POP_K = 256, 200


class PopularInput(NamedTuple):
    key: str  # always ALL
    ts: int
    sku: str
    value: float  # the event's weight: views 1, cart adds 3, orders 5 (as popularity's)


_WEIGHT = {"page_view": 1.0, "click": 1.0, "add_to_cart": 3.0, "order": 5.0}


def popular_inputs(x: Any) -> list[PopularInput]:
    """The popular list's inputs from one item input (``features.interactions.item_inputs``,
    or a native batch of them): its behaviour events (none from catalog, stock or price).

    >>> popular_inputs(("A", "add_to_cart", 5, "u1", "e1", "s1", 1, 0.0))
    [PopularInput(key='*', ts=5, sku='A', value=3.0)]
    """
    if type(x) is not tuple:  # a native input batch (features.ingest): its tuples
        return [p for t in x.tuples() for p in popular_inputs(t)]
    w = _WEIGHT.get(x[1])
    return [PopularInput(ALL, x[2], x[0], w)] if w else []


class PopularState:
    __slots__ = ("pop", "last_ts", "dirty")

    def __init__(self) -> None:
        self.pop = DecayedMap(POP_HL)
        self.last_ts = 0
        self.dirty = False

    def __getstate__(self) -> Any:
        return (self.pop, self.last_ts, self.dirty)

    def __setstate__(self, st: Any) -> None:
        self.pop, self.last_ts, self.dirty = st


class PopularFold:
    """The catalog's most popular items: behaviour events weighted and decayed (half-life
    ``POP_HL``, forward decay: while every item fits, any event order gives the same
    values), the ``POP_CAPACITY`` strongest kept (space-saving: a newcomer past the cap
    replaces the weakest and inherits its weight, so a rising item can enter; then values
    are upper bounds and depend on order), the ``POP_K`` best published.

    >>> f = PopularFold()
    >>> s = f.new()
    >>> for sku, v in (("A", 2.0), ("B", 5.0), ("A", 6.0)):
    ...     _ = f.apply(s, PopularInput(ALL, 1_000, sku, v))
    >>> f.rows(s, ALL)[0].fields["popular"]
    'A:8.0000,B:5.0000'
    """

    def __init__(self, ttl_s: int | None = None) -> None:
        self.prefix = POPULAR_ITEMS.store_prefix
        self.ttl = POPULAR_ITEMS.ttl_s if ttl_s is None else ttl_s

    def new(self) -> PopularState:
        return PopularState()

    def apply(self, s: PopularState, x: PopularInput) -> list[Any]:
        add_capped(s.pop, x.sku, x.value, x.ts, POP_CAPACITY)
        s.last_ts = max(s.last_ts, x.ts)
        s.dirty = True
        return []

    @staticmethod
    def touch(s: PopularState) -> bool:
        s.dirty = s.dirty or s.last_ts > 0
        return bool(s.dirty)

    def rows(self, s: PopularState, key: str) -> list[StoreWrite]:
        if not s.dirty:
            return []
        s.dirty = False
        t = s.last_ts
        row: Fields = {"popular": ",".join(f"{k}:{w:.4f}" for k, w in s.pop.top(POP_K, t)),
                       "as_of": t}
        return [StoreWrite("category", key, self.prefix, row, t, self.ttl)]
