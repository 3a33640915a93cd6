"""Item features (popularity, stock, price) and catalog enrichment, as a pure fold.

The item-keyed step applies ``ItemFold.apply`` to each input of one sku. Behaviour events
update popularity and send the item's catalog facts to the user step (``AffinityHint``);
the item's category hears of it as a new arrival (first catalog event) and, with every
mirrored popularity row, of its trend (``CategoryInput``, see ``features.category_features``).

>>> fold = ItemFold(allowed_lateness_ms=3_600_000)
>>> s = ItemState()
>>> out = fold.apply(s, ("A", "catalog", 0, "bikes/road", "acme", 120.0, "EUR", ("color=red",),
...                      0, "", ""))
>>> out = fold.apply(s, ("A", "page_view", 10, "u1", "e1", "s1", 1, 0.0))
>>> [type(o).__name__ for o in out], out[0].category, out[0].price_band
(['AffinityHint'], 'bikes/road', '100-250')
>>> rows = fold.rows(s, "A")
>>> [(w.view, w.fields["n_events"]) for w in rows if isinstance(w, StoreWrite)]
[('item_popularity_v1', 1)]
>>> [(c.category, c.kind, c.sku) for c in rows if isinstance(c, CategoryInput)]
[('bikes/road', 'trend', 'A')]
"""

from __future__ import annotations

from typing import Any

from features.category_features import CategoryInput
from features.decay import DecayedMap, rate_per_day
from features.definitions import ITEM_CATALOG, ITEM_POPULARITY, ITEM_PRICE, ITEM_STOCK
from features.events import LateEvent
from features.interactions import AffinityHint, price_band
from features.store import StoreWrite

H = 3_600_000
POP_HL = 24 * H
TREND_HL = 1 * H
COVER_HL = 7 * 24 * H
WEIGHTS = {"v": 1.0, "c": 3.0, "o": 5.0}
KIND_KEY = {"page_view": "v", "click": "v", "add_to_cart": "c", "order": "o"}


class ItemState:
    __slots__ = ("catalog", "pop", "trend", "cover", "stock", "price", "n_events", "last_ts",
                 "stock_as_of", "dirty")

    def __init__(self) -> None:
        # (category, brand, band, attrs, price, currency, min_age, regions, ts, options json)
        self.catalog: tuple[Any, ...] | None = None
        self.pop = DecayedMap(POP_HL)  # "v", "c", "o"
        self.trend = DecayedMap(TREND_HL)  # "v"
        self.cover = DecayedMap(COVER_HL)  # "o" (units ordered)
        self.stock: dict[str, tuple[int, int, int]] = {}  # location -> (on_hand, reserved, ts)
        self.price: tuple[float, float, str, int] | None = None
        self.n_events = 0
        self.last_ts = 0
        self.stock_as_of = 0
        self.dirty: set[str] = set()

    def __getstate__(self) -> Any:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, st: Any) -> None:
        for name, v in zip(self.__slots__, st, strict=True):
            setattr(self, name, v)


def popularity_row(s: ItemState, as_of: int) -> dict[str, Any]:
    v, c, o = (s.pop.value(k, as_of) for k in ("v", "c", "o"))
    long_rate = v / POP_HL
    short_rate = s.trend.value("v", as_of) / TREND_HL
    return {"views": round(v, 6), "carts": round(c, 6), "orders": round(o, 6),
            "popularity": round(v + 3 * c + 5 * o, 6),
            "conversion_rate": round(min(10.0, o / v) if v > 0 else 0.0, 6),
            "trending": round(min(1000.0, short_rate / long_rate) if long_rate > 0 else 0.0, 6),
            "n_events": s.n_events, "as_of": as_of}


def stock_row(s: ItemState, as_of: int) -> dict[str, Any]:
    on_hand = sum(v[0] for v in s.stock.values())
    reserved = sum(v[1] for v in s.stock.values())
    available = on_hand - reserved
    per_day = rate_per_day(s.cover.value("o", as_of), COVER_HL)
    cover = 100_000.0 if per_day <= 1e-9 else min(100_000.0, max(0, available) / per_day)
    return {"on_hand": on_hand, "reserved": reserved, "available": available,
            "days_of_cover": round(cover, 4),
            "stock_ts": max((v[2] for v in s.stock.values()), default=0)}


def price_row(s: ItemState) -> dict[str, Any]:
    assert s.price is not None
    p, lp, cur, ts = s.price
    return {"price": p, "list_price": lp, "currency": cur, "price_ts": ts}


class ItemFold:
    def __init__(self, allowed_lateness_ms: int, ttl_s: int | None = None) -> None:
        self.lateness = allowed_lateness_ms
        self.ttl = {v.name: (v.store_prefix, v.ttl_s if ttl_s is None else ttl_s)
                    for v in (ITEM_POPULARITY, ITEM_STOCK, ITEM_PRICE, ITEM_CATALOG)}

    def new(self) -> ItemState:
        return ItemState()

    @staticmethod
    def touch(s: ItemState) -> bool:
        """Mark every view holding data as changed (a resumed shard re-fills a store that
        did not survive the restart); whether there is anything to write."""
        for view, has in (("item_catalog", s.catalog is not None),
                          ("item_price", s.price is not None),
                          ("item_stock", bool(s.stock) or s.stock_as_of > 0),
                          ("item_popularity", s.n_events > 0)):
            if has:
                s.dirty.add(view)
        return bool(s.dirty)

    def rows(self, s: ItemState, sku: str) -> list[StoreWrite | CategoryInput]:
        """Store rows of the views changed since the last call (and the item's trend for
        its category with its popularity row)."""
        out: list[Any] = []
        for view in sorted(s.dirty):
            prefix, ttl = self.ttl[view]
            if view == "item_popularity":
                out.append(StoreWrite("item", sku, prefix, popularity_row(s, s.last_ts),
                                      s.last_ts, ttl))
                if s.catalog is not None and s.catalog[0]:
                    out.append(CategoryInput(s.catalog[0], "trend", s.last_ts, sku,
                                             s.trend.value("v", s.last_ts)))
            elif view == "item_stock":
                out.append(StoreWrite("item", sku, prefix, stock_row(s, s.stock_as_of),
                                      s.stock_as_of, ttl))
            elif view == "item_catalog" and s.catalog is not None:
                cat = s.catalog
                out.append(StoreWrite("item", sku, prefix, {
                    "category": cat[0], "brand": cat[1], "catalog_price": cat[4],
                    "min_age": cat[6], "regions": cat[7], "options": cat[9],
                    "catalog_ts": cat[8]}, cat[8], ttl))
            elif view == "item_price" and s.price is not None:
                out.append(StoreWrite("item", sku, prefix, price_row(s), s.price[3], ttl))
        s.dirty = set()
        return out

    def apply(self, s: ItemState, x: tuple[Any, ...]) -> list[Any]:
        sku, kind, ts = x[0], x[1], x[2]
        out: list[Any] = []
        if kind == "catalog":
            _, _, _, category, brand, price, currency, attrs, min_age, regions, options = x
            if s.catalog is not None and s.catalog[8] > ts:
                return out  # an older catalog version: the newer one stays
            if category and (s.catalog is None or s.catalog[0] != category):
                out.append(CategoryInput(category, "new", ts, sku, 0.0))
            s.catalog = (category, brand, price_band(price), attrs, price, currency, min_age,
                         regions, ts, options)
            s.dirty.add("item_catalog")
            if s.price is None or s.price[3] <= ts:
                s.price = (price, price, currency, ts)
                s.dirty.add("item_price")
            return out + self.rows(s, sku)  # rare, and decisions need them: mirrored at once
        if kind == "inventory":
            _, _, _, location, on_hand, reserved = x
            cur = s.stock.get(location)
            if cur is None or cur[2] <= ts:  # last write in event time wins
                s.stock[location] = (on_hand, reserved, ts)
            s.stock_as_of = max(s.stock_as_of, ts)
            s.dirty.add("item_stock")
            return self.rows(s, sku)
        if kind == "price":
            _, _, _, price, list_price, currency = x
            if s.price is None or s.price[3] <= ts:
                s.price = (price, list_price, currency, ts)
                s.dirty.add("item_price")
            return self.rows(s, sku)
        # behaviour: sku, kind, ts, user, event_id, session, qty, unit_price
        watermark = s.last_ts
        if ts < watermark - self.lateness:
            out.append(LateEvent(id=f"late:item:{sku}:{x[4]}", ts=ts, entity="item",
                                 key=sku, event_id=x[4], event_ts=ts, watermark=watermark,
                                 lateness_ms=watermark - ts,
                                 reason=f"older than the item's watermark minus the allowed "
                                        f"lateness ({self.lateness} ms)"))
        else:
            k = KIND_KEY[kind]
            qty = x[6]
            s.pop.add(k, 1.0 if k == "v" else float(qty), ts)
            if k == "v":
                s.trend.add("v", 1.0, ts)
            elif k == "o":
                s.cover.add("o", float(qty), ts)
            s.n_events += 1
            s.last_ts = max(s.last_ts, ts)
            s.dirty.add("item_popularity")
            if k == "o":
                s.stock_as_of = max(s.stock_as_of, ts)
                s.dirty.add("item_stock")  # days of cover moves with the order rate
        cat = s.catalog or ("", "", price_band(x[7]) if x[7] else "", (), 0.0, "")
        if cat[0] or cat[2]:
            out.append(AffinityHint(x[3], kind, ts, x[4], cat[0], cat[1], cat[2], cat[3]))
        return out
