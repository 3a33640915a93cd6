"""The agent's built-in tools, reading the online store through its interface (an
ERP/PLM/pricing service can be plugged in instead: a connector whose functions return the
same output models is a valid adapter).

>>> from features.store import StoreWrite
>>> from agent.tools import ToolRuntime
>>> class Store:  # any OnlineStore
...     rows = {}
...     def apply(self, ops): self.rows.update({o.key: {f"{o.view}.{k}": v for k, v in
...                                                      o.fields.items()} for o in ops})
...     def read_many(self, entity, keys): return [self.rows.get(k) for k in keys]
>>> store = Store()
>>> store.apply([StoreWrite("item", "A", "item_stock_v1", {"available": 4}, 1, 0)])
>>> rt = ToolRuntime(store_tools(store))
>>> rt.call("inventory_check", {"skus": ["A", "B"]}, ALL_SCOPES).output
{'available': {'A': 4, 'B': None}}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from agent.tools import Tool, ToolSpec
from features.category_features import ALL, POP_K
from features.definitions import (
    CATEGORY_ITEMS,
    ITEM_CATALOG,
    ITEM_COVISITATION,
    ITEM_KEYS,
    ITEM_PRICE,
    ITEM_STOCK,
    POPULAR_ITEMS,
    USER_TRAIL,
)
from features.retrieval import Scored, kernels, parse_weights
from features.session_index import TRAIL_ENTITY
from features.store import RowReader
from policies.configuration import ConfigSpace

# the store columns read, named through the registry (a version bump reaches them)
CATEGORY = ITEM_CATALOG.column("category")
BRAND = ITEM_CATALOG.column("brand")
CATALOG_PRICE = ITEM_CATALOG.column("catalog_price")
MIN_AGE = ITEM_CATALOG.column("min_age")
REGIONS = ITEM_CATALOG.column("regions")
OPTIONS = ITEM_CATALOG.column("options")
PRICE = ITEM_PRICE.column("price")
LIST_PRICE = ITEM_PRICE.column("list_price")
CURRENCY = ITEM_PRICE.column("currency")
AVAILABLE = ITEM_STOCK.column("available")
VIEW_VIEW = ITEM_COVISITATION.column("view_view")
VIEW_BUY = ITEM_COVISITATION.column("view_buy")
KEYS = ITEM_KEYS.column("keys")
WINDOW = 10  # session-kNN compares a key's newest 10 items
TRAIL_ITEMS = USER_TRAIL.column("items")
TRENDING = CATEGORY_ITEMS.column("trending")
NEW_ARRIVALS = CATEGORY_ITEMS.column("new_arrivals")
POPULAR = POPULAR_ITEMS.column("popular")
ALL_SCOPES = frozenset({"catalog:read", "inventory:read", "pricing:quote", "configurator:read"})


class Skus(BaseModel):
    skus: list[str] = Field(max_length=500)


class CatalogOut(BaseModel):
    items: dict[str, dict[str, Any]]


class InventoryOut(BaseModel):
    available: dict[str, int | None]


class QuoteIn(BaseModel):
    sku: str
    discount_pct: float = Field(0.0, ge=0, le=100)


class QuoteOut(BaseModel):
    price: float
    list_price: float
    currency: str
    quoted: float


class CovisIn(BaseModel):
    items: list[str] = Field(max_length=50)
    limit: int = Field(50, ge=1, le=500)
    last_limit: int = Field(0, ge=0, le=500, description="also the first item's own "
                            "neighbours, this many (0: not asked)")


class CovisOut(BaseModel):
    items: list[tuple[str, float]]
    last: list[tuple[str, float]] = []


class KnnIn(BaseModel):
    key: str = Field(max_length=256)
    neighbours: int = Field(50, ge=1, le=200)
    limit: int = Field(30, ge=1, le=500)


class ScoredOut(BaseModel):
    items: list[tuple[str, float]]


class CategoriesIn(BaseModel):
    categories: list[str] = Field(max_length=10)
    limit: int = Field(20, ge=1, le=200)


class LimitIn(BaseModel):
    limit: int = Field(30, ge=1, le=POP_K)


class ConfigIn(BaseModel):
    sku: str
    affinities: str = Field("", description="'attribute=value:weight,...' (user_affinity)")


class ConfigOut(BaseModel):
    choices: dict[str, str]
    score: float
    price: float


@lru_cache(maxsize=4096)
def _options(encoded: str) -> dict[str, Any]:
    """Parsed option groups of a configurable item (cached by their JSON: rows repeat)."""
    return json.loads(encoded) if encoded else {}


@lru_cache(maxsize=4096)
def _config_space(encoded: str) -> ConfigSpace:
    """The prepared option combinations of a configurable item (cached like ``_options``)."""
    options = _options(encoded)
    return ConfigSpace(options["groups"], options["compatibility"])



def _category_list(merged: Callable[..., Scored], rows: list[dict[str, Any] | None], field: str,
                   limit: int, weighted: bool) -> Scored:
    return merged(tuple(str(r.get(field, "")) if r else ""
                        for r in rows), weighted, limit)


def store_tools(rows: RowReader, native: bool = True) -> list[Tool]:
    """The built-in tools over ``rows``: an online store, or a cache of its rows the caller
    shares and warms (``connectors.cached_store.CachedRows``, see
    ``agent.policy_gate.PolicyGate.prefetch``). Candidate retrieval computes with
    ``features.retrieval.kernels(native)``."""
    lists = items = rows
    k = kernels(native)
    # keyed by the rows' own strings: a changed row is a new key
    neighbours = lru_cache(maxsize=50_000)(k.neighbours)
    merged = lru_cache(maxsize=20_000)(k.merged_lists)

    def catalog(x: dict[str, Any]) -> dict[str, Any]:
        rows = items.read_many("item", x["skus"])
        return {"items": {s: {"category": r.get(CATEGORY, ""),
                              "brand": r.get(BRAND, ""),
                              "price": r.get(PRICE, r.get(CATALOG_PRICE)),
                              "min_age": r.get(MIN_AGE, 0),
                              "configurable": bool(r.get(OPTIONS))}
                          for s, r in zip(x["skus"], rows, strict=True) if r}}

    def inventory(x: dict[str, Any]) -> dict[str, Any]:
        rows = items.read_many("item", x["skus"])
        return {"available": {s: (r or {}).get(AVAILABLE)
                              for s, r in zip(x["skus"], rows, strict=True)}}

    def quote(x: dict[str, Any]) -> dict[str, Any]:
        (r,) = items.read_many("item", [x["sku"]])
        if not r or PRICE not in r:
            raise LookupError(f"no price for {x['sku']}")
        price = float(r[PRICE])
        return {"price": price, "list_price": float(r.get(LIST_PRICE, price)),
                "currency": r.get(CURRENCY, "EUR"),
                "quoted": round(price * (1 - x.get("discount_pct", 0.0) / 100), 2)}

    def covis(x: dict[str, Any]) -> dict[str, Any]:
        """Neighbours of the recent items, weighted by recency rank (newest first)."""
        seeds = tuple(x["items"])
        rows = lists.read_many("item", list(seeds))
        encoded = tuple((str(r.get(VIEW_VIEW, "")), str(r.get(VIEW_BUY, ""))) if r else ("", "")
                        for r in rows)
        out = {"items": neighbours(seeds, encoded, x.get("limit", 50))}
        if x.get("last_limit") and seeds:  # the newest item's neighbours alone, same rows
            out["last"] = neighbours(seeds[:1], encoded[:1], x["last_limit"])
        return out

    def knn(x: dict[str, Any]) -> dict[str, Any]:
        """Session-kNN: the keys whose trails share the most (recent) items with this key's
        trail, and what their trails hold (``features.retrieval.session_knn``)."""
        key = x["key"]
        (own,) = lists.read_many(TRAIL_ENTITY, [key])
        trail = tuple(filter(None, str(own.get(TRAIL_ITEMS, "")).split(","))) if own else ()
        if not trail:
            return {"items": ()}
        rows = lists.read_many("item", list(trail[:WINDOW]))
        nbs = k.similar_keys(key, trail,
                             tuple(str(r.get(KEYS, "")) if r else "" for r in rows),
                             x.get("neighbours", 50), WINDOW)
        if not nbs:
            return {"items": ()}
        held = lists.read_many(TRAIL_ENTITY, [o for o, _ in nbs])
        return {"items": k.session_knn(nbs, tuple(str(r.get(TRAIL_ITEMS, "")) if r else ""
                                                for r in held), x.get("limit", 30))}

    def trending(x: dict[str, Any]) -> dict[str, Any]:
        """Items trending now in the given categories (weights scaled to the top one)."""
        rows = lists.read_many("category", x["categories"])
        return {"items": _category_list(merged, rows, TRENDING, x.get("limit", 20), True)}

    def arrivals(x: dict[str, Any]) -> dict[str, Any]:
        """The newest items in the given categories (1.0 = newest)."""
        rows = lists.read_many("category", x["categories"])
        return {"items": _category_list(merged, rows, NEW_ARRIVALS, x.get("limit", 20), False)}

    def popular(x: dict[str, Any]) -> dict[str, Any]:
        """The catalog's most popular items (weights scaled to the top one): the first
        ``limit`` of the published list, in its order (its weights are written to 4
        decimals: re-sorting the whole list by them could swap items tied there)."""
        (row,) = lists.read_many("category", [ALL])
        limit = x.get("limit", 30)
        text = str(row.get(POPULAR, "")) if row else ""
        head = ",".join(text.split(",", limit)[:limit])
        return {"items": merged((head,), True, limit)}

    def configure(x: dict[str, Any]) -> dict[str, Any]:
        (found,) = items.read_many("item", [x["sku"]])
        r = found or {}
        text = r.get(OPTIONS) or ""
        options = _options(text)
        if not options:
            raise LookupError(f"{x['sku']} is not configurable")
        groups = options["groups"]
        space = _config_space(text)
        mats = space.material_skus
        stock = {m: (row or {}).get(AVAILABLE)
                 for m, row in zip(mats, items.read_many("item", mats), strict=True)}
        affinity = parse_weights(x["affinities"])
        best = space.best(affinity, stock)
        if best is None:
            raise LookupError(f"no valid configuration of {x['sku']} in stock")
        choices, score = best
        delta = sum(o.get("price_delta", 0.0) for g in groups for o in g["options"]
                    if choices.get(g["group_id"]) == o["option_id"])
        base = float(r.get(PRICE, r.get(CATALOG_PRICE, 0.0)))
        return {"choices": choices, "score": score, "price": round(base + delta, 2)}

    return [
        Tool(ToolSpec(name="catalog_lookup", description="catalog facts of items",
                      scope="catalog:read", input_model=Skus, output_model=CatalogOut,
                      trusted=True), catalog),
        Tool(ToolSpec(name="inventory_check", description="units available per item",
                      scope="inventory:read", input_model=Skus, output_model=InventoryOut,
                      trusted=True),
             inventory),
        Tool(ToolSpec(name="pricing_quote", description="price of an item with a discount",
                      scope="pricing:quote", input_model=QuoteIn, output_model=QuoteOut,
                      trusted=True), quote),
        Tool(ToolSpec(name="covis_candidates", description="items co-visited with recent "
                      "ones", scope="catalog:read", input_model=CovisIn,
                      output_model=CovisOut, trusted=True), covis),
        Tool(ToolSpec(name="session_neighbours", description="items in the recent trails of "
                      "the keys most like this one (session-kNN)", scope="catalog:read",
                      input_model=KnnIn, output_model=ScoredOut, private=("key",),
                      trusted=True), knn),
        Tool(ToolSpec(name="category_trending", description="items trending now in the "
                      "user's top categories", scope="catalog:read", input_model=CategoriesIn,
                      output_model=ScoredOut, trusted=True), trending),
        Tool(ToolSpec(name="new_arrivals", description="newest items in the user's top "
                      "categories", scope="catalog:read", input_model=CategoriesIn,
                      output_model=ScoredOut, trusted=True), arrivals),
        Tool(ToolSpec(name="popular_items", description="the catalog's most popular items",
                      scope="catalog:read", input_model=LimitIn, output_model=ScoredOut,
                      trusted=True), popular),
        Tool(ToolSpec(name="configurator", description="the option combination a user "
                      "likes most that is valid and in stock", scope="configurator:read",
                      input_model=ConfigIn, output_model=ConfigOut, trusted=True), configure),
    ]


class PlmConfigIn(BaseModel):
    sku: str
    option_groups: list[dict[str, Any]]
    compatibility: list[dict[str, Any]] = []
    base_price: float = Field(ge=0)
    affinities: str = ""
    base_days: int = Field(description="the MES lead time of the standard build (-1: none)")
    window_days: int = Field(ge=0, description="the longest lead time the user accepts")


class PlmConfigOut(BaseModel):
    choices: dict[str, str]
    options: list[str]
    score: float
    price: float
    extra_days: int


def plm_configurator_tool(rows: RowReader) -> Tool:
    """The configurator over a product structure from the PLM (``connectors.enterprise``)
    instead of the catalog's options: the combination the user's affinities like most that
    is compatible, has its materials in stock (the store's stock rows) and ships within
    ``window_days`` (the MES's base lead time plus the slowest chosen option's own days).

    >>> from agent.tools import ToolRuntime
    >>> rt = ToolRuntime([plm_configurator_tool(type("R", (), {
    ...     "read_many": lambda self, e, keys: [{AVAILABLE: 3} for _ in keys]})())])
    >>> groups = [{"group_id": "frame", "options": [
    ...     {"option_id": "alu", "price_delta": 0.0, "lead_time_days": 0},
    ...     {"option_id": "carbon", "price_delta": 400.0, "lead_time_days": 5,
    ...      "attributes": {"frame": "carbon"}}]}]
    >>> x = {"sku": "B1", "option_groups": groups, "base_price": 1000.0,
    ...      "affinities": "frame=carbon:1.0", "base_days": 2}
    >>> rt.call("configurator_plm", {**x, "window_days": 10}, ALL_SCOPES).output["choices"]
    {'frame': 'carbon'}
    >>> rt.call("configurator_plm", {**x, "window_days": 5}, ALL_SCOPES).output["choices"]
    {'frame': 'alu'}
    """
    def configure(x: dict[str, Any]) -> dict[str, Any]:
        groups = x["option_groups"]
        if not groups:
            raise LookupError(f"{x['sku']} is not configurable")
        if x["base_days"] < 0:
            raise LookupError(f"{x['sku']}: no production capacity in the MES's horizon")
        space = ConfigSpace(groups, x.get("compatibility") or [])
        mats = space.material_skus
        stock = {m: (row or {}).get(AVAILABLE)
                 for m, row in zip(mats, rows.read_many("item", mats), strict=True)}
        days = {f"{g['group_id']}:{o['option_id']}": int(o.get("lead_time_days", 0))
                for g in groups for o in g["options"]}
        best = space.best(parse_weights(x.get("affinities", "")), stock, option_days=days,
                          max_days=x["window_days"] - x["base_days"])
        if best is None:
            raise LookupError(f"no configuration of {x['sku']} in stock that ships within "
                              f"{x['window_days']} days")
        choices, score = best
        chosen = [f"{g}:{o}" for g, o in choices.items()]
        delta = sum(o.get("price_delta", 0.0) for g in groups for o in g["options"]
                    if choices.get(g["group_id"]) == o["option_id"])
        return {"choices": choices, "options": chosen, "score": score,
                "price": round(float(x["base_price"]) + delta, 2),
                "extra_days": max((days.get(c, 0) for c in chosen), default=0)}

    return Tool(ToolSpec(name="configurator_plm", description="the option combination a "
                         "user likes most that is valid, in stock and ships in time (PLM "
                         "structure, MES lead time)", scope="configurator:read",
                         input_model=PlmConfigIn, output_model=PlmConfigOut, trusted=True),
                configure)
