"""The agent's built-in tools, reading the online store through its interface (an
ERP/PLM/pricing service can be plugged in instead: a connector whose functions return the
same output models is a valid adapter).

>>> from features.store import StoreWrite
>>> from operators.tools import ToolRuntime
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
import logging
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

from pydantic import BaseModel, Field

from features.retrieval import Scored, kernels, parse_weights
from features.store import OnlineStore, read_groups
from operators.tools import Tool, ToolSpec
from policies.configuration import ConfigSpace

log = logging.getLogger(__name__)

CAT = "item_catalog_v2."
ALL_SCOPES = frozenset({"catalog:read", "inventory:read", "pricing:quote", "configurator:read"})


class Skus(BaseModel):
    skus: list[str] = Field(max_length=500)


class CatalogOut(BaseModel):
    items: dict[str, dict]


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


class ScoredOut(BaseModel):
    items: list[tuple[str, float]]


class CategoriesIn(BaseModel):
    categories: list[str] = Field(max_length=10)
    limit: int = Field(20, ge=1, le=200)


class ConfigIn(BaseModel):
    sku: str
    affinities: str = Field("", description="'attribute=value:weight,...' (user_affinity)")


class ConfigOut(BaseModel):
    choices: dict[str, str]
    score: float
    price: float


@lru_cache(maxsize=4096)
def _options(encoded: str) -> dict:
    """Parsed option groups of a configurable item (cached by their JSON: rows repeat)."""
    return json.loads(encoded) if encoded else {}


@lru_cache(maxsize=4096)
def _config_space(encoded: str) -> ConfigSpace:
    """The prepared option combinations of a configurable item (cached like ``_options``)."""
    options = _options(encoded)
    return ConfigSpace(options["groups"], options["compatibility"])


class RowReader(Protocol):
    def read_many(self, entity: str, keys: list[str]) -> list[Any]: ...


class CachedRows:
    """Read-through cache of store rows for ``ttl_s`` seconds (candidate lists, neighbours
    and item facts change slowly: one round trip per miss, not per decision). With
    ``derive``, what is cached and returned is ``derive(row)`` (computed once per miss).
    ``store`` may be another ``CachedRows`` (a derived cache over a shared row cache).
    Missing rows are not cached: an item whose catalog row arrives is seen at once.

    With ``stale_s`` (stale-while-revalidate), a row up to ``stale_s`` past its expiry is
    returned at once and read again by a background thread, several keys per round trip:
    the caller (a worker thread) does not wait for the store for rows it has seen lately.
    A row older than that, or never seen, is read while the caller waits, as without it.

    >>> class Store:
    ...     rows, reads = {"A": {"stock": 1}}, 0
    ...     def read_many(self, entity, keys):
    ...         Store.reads += 1
    ...         return [dict(self.rows[k]) if k in self.rows else None for k in keys]
    >>> now = [0.0]
    >>> c = CachedRows(Store(), ttl_s=1.0, stale_s=1.0, clock=lambda: now[0], background=False)
    >>> c.read_many("item", ["A"]), Store.reads
    ([{'stock': 1}], 1)
    >>> Store.rows["A"] = {"stock": 0}; now[0] = 1.5   # expired, within the stale window
    >>> c.read_many("item", ["A"]), Store.reads        # served at once, queued for refresh
    ([{'stock': 1}], 1)
    >>> c.refresh_pending(), c.read_many("item", ["A"]), Store.reads
    (1, [{'stock': 0}], 2)
    """

    def __init__(self, store: RowReader, ttl_s: float = 1.0, max_keys: int = 100_000,
                 derive: Callable[[dict | None], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic, stale_s: float = 0.0,
                 background: bool = True) -> None:
        self.store, self.ttl, self.max, self.clock = store, ttl_s, max_keys, clock
        self.derive = derive
        self.stale_s = stale_s
        self._rows: dict[str, dict[str, tuple[float, Any]]] = {}  # entity -> key -> (expiry, v)
        self._size = 0
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, None]] = {}  # entity -> keys served stale
        self._inflight: dict[str, dict[str, None]] = {}  # the ones being read again now
        self._background = background  # False: the owner calls refresh_pending (tests)
        self._refresher: threading.Thread | None = None
        self._wake = threading.Event()
        self._failed_at = -1e9

    def read_many(self, entity: str, keys: list[str]) -> list[Any]:
        return self.read_groups([(entity, keys)])[0]

    def read_groups(self, requests: list[tuple[str, list[str]]]) -> list[list[Any]]:
        """``read_many`` for several entities; the misses of all in one store round trip."""
        now = self.clock()
        stale_until = now - self.stale_s  # rows that expired after this are served stale
        queued = False
        with self._lock:
            outs: list[list[Any]] = []
            fetch: list[tuple[str, dict[str, list[int]]]] = []  # (entity, key -> positions)
            for entity, keys in requests:
                rows = self._rows.get(entity)
                if rows is None:
                    rows = self._rows[entity] = {}
                out: list[Any] = []
                missing: dict[str, list[int]] | None = None
                for k in keys:
                    v = rows.get(k)
                    if v is not None and v[0] > now:
                        out.append(v[1])
                    elif v is not None and v[0] > stale_until:
                        out.append(v[1])
                        if k not in self._inflight.get(entity, ()):
                            self._pending.setdefault(entity, {})[k] = None
                            queued = True
                    else:
                        out.append(None)
                        if missing is None:
                            missing = {}
                        missing.setdefault(k, []).append(len(out) - 1)
                outs.append(out)
                fetch.append((entity, missing or {}))
            if queued and self._background:
                self._kick()
            if any(m for _, m in fetch):
                if self._size > self.max:
                    for d in self._rows.values():
                        d.clear()
                    self._size = 0
                wanted = [(entity, list(m)) for entity, m in fetch if m]
                fresh = iter(read_groups(self.store, wanted))
                for (entity, missing), out in zip(fetch, outs, strict=True):
                    if not missing:
                        continue
                    rows = self._rows[entity]
                    for (k, where), r in zip(missing.items(), next(fresh), strict=True):
                        v = self._keep(rows, k, r, now)
                        for i in where:
                            out[i] = v
        return outs

    def _keep(self, rows: dict[str, tuple[float, Any]], k: str, r: dict | None,
              now: float) -> Any:
        """Cache a row just read (under the lock); what the reader gets for it."""
        v = r if self.derive is None else self.derive(r)
        if r is not None:  # a row not (yet) in the store is read again next time
            if k not in rows:
                self._size += 1
            rows[k] = (now + self.ttl, v)
        elif rows.pop(k, None) is not None:  # gone from the store: not served stale again
            self._size -= 1
        return v

    def refresh_pending(self) -> int:
        """Read the rows served stale since the last call again, in one round trip;
        returns how many were read."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._inflight = pending
        wanted = [(entity, list(keys)) for entity, keys in pending.items() if keys]
        try:
            if not wanted:
                return 0
            fresh = read_groups(self.store, wanted)  # without the lock: readers go on
            now = self.clock()
            with self._lock:
                for (entity, keys), got in zip(wanted, fresh, strict=True):
                    rows = self._rows.setdefault(entity, {})
                    for k, r in zip(keys, got, strict=True):
                        self._keep(rows, k, r, now)
            return sum(len(keys) for _, keys in wanted)
        finally:
            with self._lock:
                self._inflight = {}

    def _kick(self) -> None:
        """Wake the refresher (under the lock), starting it if it is not running."""
        if self._refresher is None:
            self._refresher = threading.Thread(target=self._refresh_loop, daemon=True,
                                               name="cached-rows-refresh")
            self._refresher.start()
        self._wake.set()

    def _refresh_loop(self, idle_exit_s: float = 5.0, gather_s: float = 0.02) -> None:
        while True:
            if not self._wake.wait(idle_exit_s):
                with self._lock:
                    if not self._pending:  # idle: stop (the next stale read restarts it)
                        self._refresher = None
                        return
            # the keys of the next few batches too, in the same round trip: fewer reads
            # (~5 keys each without this), fewer turns of this thread at the GIL
            time.sleep(gather_s)
            self._wake.clear()
            try:
                self.refresh_pending()
            except Exception:  # the rows stay stale until ttl + stale_s, then are read
                now = time.monotonic()  # in the caller's path, where a failure is seen
                if now - self._failed_at > 30:
                    self._failed_at = now
                    log.warning("background refresh of cached store rows failed",
                                exc_info=True)


def _category_list(merged: Callable[..., Scored], rows: list[dict | None], field: str,
                   limit: int, weighted: bool) -> Scored:
    return merged(tuple(str(r.get(f"category_items_v1.{field}", "")) if r else ""
                        for r in rows), weighted, limit)


def store_tools(store: OnlineStore, cache_s: float = 1.0, native: bool = True,
                rows: CachedRows | None = None) -> list[Tool]:
    """The built-in tools over ``store``. Candidate retrieval reads rows through a
    ``cache_s`` cache and computes with ``features.retrieval.kernels(native)``; catalog,
    inventory, pricing and the configurator read the store itself, or ``rows`` when given
    (a cache the caller shares and warms: see ``operators.policy.PolicyGate.prefetch``)."""
    lists = rows if rows is not None else CachedRows(store, cache_s)
    items: OnlineStore | CachedRows = rows if rows is not None else store
    k = kernels(native)
    # keyed by the rows' own strings: a changed row is a new key
    neighbours = lru_cache(maxsize=50_000)(k.neighbours)
    merged = lru_cache(maxsize=20_000)(k.merged_lists)

    def catalog(x: dict) -> dict:
        rows = items.read_many("item", x["skus"])
        return {"items": {s: {"category": r.get(CAT + "category", ""),
                              "brand": r.get(CAT + "brand", ""),
                              "price": r.get("item_price_v1.price", r.get(CAT + "catalog_price")),
                              "min_age": r.get(CAT + "min_age", 0),
                              "configurable": bool(r.get(CAT + "options"))}
                          for s, r in zip(x["skus"], rows, strict=True) if r}}

    def inventory(x: dict) -> dict:
        rows = items.read_many("item", x["skus"])
        return {"available": {s: (r or {}).get("item_stock_v1.available")
                              for s, r in zip(x["skus"], rows, strict=True)}}

    def quote(x: dict) -> dict:
        (r,) = items.read_many("item", [x["sku"]])
        if not r or "item_price_v1.price" not in r:
            raise LookupError(f"no price for {x['sku']}")
        price = float(r["item_price_v1.price"])
        return {"price": price, "list_price": float(r.get("item_price_v1.list_price", price)),
                "currency": r.get("item_price_v1.currency", "EUR"),
                "quoted": round(price * (1 - x.get("discount_pct", 0.0) / 100), 2)}

    def covis(x: dict) -> dict:
        """Neighbours of the recent items, weighted by recency rank (newest first)."""
        seeds = tuple(x["items"])
        rows = lists.read_many("item", list(seeds))
        encoded = tuple((str(r.get("item_covisitation_v1.view_view", "")),
                         str(r.get("item_covisitation_v1.view_buy", ""))) if r else ("", "")
                        for r in rows)
        return {"items": neighbours(seeds, encoded, x.get("limit", 50))}

    def trending(x: dict) -> dict:
        """Items trending now in the given categories (weights scaled to the top one)."""
        rows = lists.read_many("category", x["categories"])
        return {"items": _category_list(merged, rows, "trending", x.get("limit", 20), True)}

    def arrivals(x: dict) -> dict:
        """The newest items in the given categories (1.0 = newest)."""
        rows = lists.read_many("category", x["categories"])
        return {"items": _category_list(merged, rows, "new_arrivals", x.get("limit", 20), False)}

    def configure(x: dict) -> dict:
        (found,) = items.read_many("item", [x["sku"]])
        r = found or {}
        text = r.get(CAT + "options") or ""
        options = _options(text)
        if not options:
            raise LookupError(f"{x['sku']} is not configurable")
        groups = options["groups"]
        space = _config_space(text)
        mats = space.material_skus
        stock = {m: (row or {}).get("item_stock_v1.available")
                 for m, row in zip(mats, items.read_many("item", mats), strict=True)}
        affinity = parse_weights(x["affinities"])
        best = space.best(affinity, stock)
        if best is None:
            raise LookupError(f"no valid configuration of {x['sku']} in stock")
        choices, score = best
        delta = sum(o.get("price_delta", 0.0) for g in groups for o in g["options"]
                    if choices.get(g["group_id"]) == o["option_id"])
        base = float(r.get("item_price_v1.price", r.get(CAT + "catalog_price", 0.0)))
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
                      output_model=ScoredOut, trusted=True), covis),
        Tool(ToolSpec(name="category_trending", description="items trending now in the "
                      "user's top categories", scope="catalog:read", input_model=CategoriesIn,
                      output_model=ScoredOut, trusted=True), trending),
        Tool(ToolSpec(name="new_arrivals", description="newest items in the user's top "
                      "categories", scope="catalog:read", input_model=CategoriesIn,
                      output_model=ScoredOut, trusted=True), arrivals),
        Tool(ToolSpec(name="configurator", description="the option combination a user "
                      "likes most that is valid and in stock", scope="configurator:read",
                      input_model=ConfigIn, output_model=ConfigOut, trusted=True), configure),
    ]
