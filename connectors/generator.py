"""Seeded, reproducible commerce traffic: catalog, users with tastes, sessions, stock, prices.

Used by the demo, the tests and the benchmarks. The same seed and parameters always give
the same bytes.

- a catalog with a category tree, brands, prices, attributes and configurable products
  (option groups whose options consume material SKUs, with compatibility rules);
- users with latent tastes (category weights, favourite brands, a price band);
- sessions of views and clicks, cart adds and orders sampled from those tastes;
- inventory that depletes with orders and restocks; price changes; consent changes;
- a taste shift at ``shift_at`` (a fraction of the run): every user's category weights
  rotate and ``garden`` starts trending, which drift detectors should notice; and, at
  ``flip_at``, a second one of behaviour: each category's popular items fall out of favour;
- malformed events at ``malformed_rate`` (broken JSON, missing or wrongly typed fields,
  unknown types, out-of-range values, bad bytes), each marked so tests can count them.

>>> g = Generator(GenConfig(seed=1, users=5, items=20, events=50, malformed_rate=0.1))
>>> recs = list(g.records())
>>> len(recs) == len(list(Generator(GenConfig(seed=1, users=5, items=20, events=50,
...                                 malformed_rate=0.1)).records()))
True
>>> sum(r.malformed for r in recs) > 0
True
"""

from __future__ import annotations

import bisect
import json
import math
import random
from collections.abc import Iterator
from typing import Literal, NamedTuple

from pydantic import BaseModel, Field

from features.events import PURPOSES

TOP_CATEGORIES = ["bikes", "apparel", "shoes", "electronics", "home", "garden", "sports", "toys"]
SHIFT_TREND = TOP_CATEGORIES.index("garden")  # the category that trends after the shift
ATTR_VALUES = {
    "color": ["black", "white", "red", "blue", "green", "grey"],
    "material": ["cotton", "wool", "steel", "aluminium", "carbon", "wood", "plastic"],
    "size": ["S", "M", "L", "XL"],
}


class GenConfig(BaseModel):
    seed: int = 42
    users: int = Field(1000, ge=1)
    items: int = Field(500, ge=4)
    events: int = Field(10_000, ge=1, description="behavioural events (views, carts, orders)")
    start_ts: int = 1_700_000_000_000
    mean_gap_ms: int = Field(200, ge=1, description="mean event-time gap between events")
    malformed_rate: float = Field(0.01, ge=0, le=1)
    shift_at: float = Field(0.5, ge=0, le=1, description="fraction of the run; 1 = never")
    flip_at: float = Field(1.0, ge=0, le=1, description="a second shift, of behaviour: from "
                           "this fraction of the run the popular items of each category "
                           "fall out of favour and its long tail is browsed instead (what a "
                           "ranker learned about popularity turns wrong); 1 = never")
    configurable_share: float = Field(0.1, ge=0, le=1)
    currency: str = "EUR"
    # what real session data looks like (public session datasets): the "sessions" profile
    # sets all three; the default keeps the original traffic (tests rely on its numbers)
    profile: Literal["default", "sessions"] = "default"
    revisit: float = Field(0.0, ge=0, le=0.9, description="share of a session's later views "
                           "that return to an item it viewed (recent ones likelier)")
    zipf: float | None = Field(None, gt=1.0, le=3.0, description="an item's rank in its "
                               "category drawn from a Zipf law with this exponent (None: "
                               "exponential ranks)")
    session_mean: float | None = Field(None, gt=1.0, le=50.0, description="mean views per "
                                       "session, geometric (None: uniform 1..8)")

    def model_post_init(self, _ctx: object) -> None:
        if self.profile == "sessions":  # a third of later views revisit; median session 3
            self.revisit = self.revisit or 0.15  # and Zipf's own repeats make up the rest
            self.zipf = self.zipf or 1.05
            self.session_mean = self.session_mean or 4.0


class GenRecord(NamedTuple):
    key: str  # partitioning key: user id, or sku for catalog/stock/price events
    value: bytes
    malformed: bool
    type: str  # event type ("malformed" for broken ones)
    ts: int = 0  # its event time (for a malformed one, the time it was made at)


class _Item(NamedTuple):
    sku: str
    top: int
    brand: str
    price: float


class Generator:
    def __init__(self, cfg: GenConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self._n = 0
        self.ts = cfg.start_ts
        self.items: list[_Item] = []
        self.by_top: list[list[int]] = [[] for _ in TOP_CATEGORIES]
        self.stock: dict[str, int] = {}
        self.brands = [f"brand{b:02d}" for b in range(max(3, cfg.items // 20))]
        self._zipf_cw: dict[int, list[float]] = {}  # pool size -> cumulative Zipf weights

    # ------------------------------------------------------------------ helpers
    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self.cfg.seed}-{self._n}"

    def _ev(self, type_: str, key: str, **fields) -> GenRecord:
        body = {"type": type_, "schema_version": 1, "event_id": self._id("ev"), "ts": self.ts,
                **fields}
        return GenRecord(key, json.dumps(body, separators=(",", ":")).encode(), False, type_,
                         self.ts)

    def catalog(self) -> Iterator[GenRecord]:
        """The catalog and stock events a run starts with (what ``records`` yields first)."""
        return self._catalog()

    def _catalog(self) -> Iterator[GenRecord]:
        rng = self.rng
        for i in range(self.cfg.items):
            top = rng.randrange(len(TOP_CATEGORIES))
            sku = f"SKU{i:06d}"
            price = round(min(9_999.0, rng.lognormvariate(3.5, 0.8)), 2)
            item = _Item(sku, top, rng.choice(self.brands), price)
            self.items.append(item)
            self.by_top[top].append(i)
            attrs = {k: rng.choice(v) for k, v in ATTR_VALUES.items()}
            groups, compat = [], []
            if rng.random() < self.cfg.configurable_share:
                groups = [
                    {"group_id": "frame", "label": "Frame", "options": [
                        {"option_id": "alu", "label": "Aluminium", "price_delta": 0.0,
                         "material_sku": "MAT-alu"},
                        {"option_id": "carbon", "label": "Carbon", "price_delta": 400.0,
                         "material_sku": "MAT-carbon"}]},
                    {"group_id": "color", "label": "Colour", "options": [
                        {"option_id": c, "label": c.title(), "attributes": {"color": c}}
                        for c in ATTR_VALUES["color"][:4]]},
                    {"group_id": "size", "label": "Size", "options": [
                        {"option_id": s, "label": s} for s in ATTR_VALUES["size"]]},
                ]
                compat = [{"when": "frame:carbon", "excludes": ["color:red"]},
                          {"when": "size:XL", "requires": ["frame:alu"]}]
            yield self._ev("catalog", sku, sku=sku, title=f"{TOP_CATEGORIES[top]} item {i}",
                           category_path=[TOP_CATEGORIES[top], f"{TOP_CATEGORIES[top]}-{i % 4}"],
                           brand=item.brand, price=price, currency=self.cfg.currency,
                           attributes=attrs, option_groups=groups, compatibility=compat,
                           min_age=18 if rng.random() < 0.02 else 0)
            self.stock[sku] = rng.randint(0, 50)
            yield self._ev("inventory", sku, sku=sku, location="main",
                           on_hand=self.stock[sku], reserved=0)
        for mat in ("MAT-alu", "MAT-carbon"):
            self.stock[mat] = 200
            yield self._ev("inventory", mat, sku=mat, location="main", on_hand=200, reserved=0)

    def _malformed(self, good: GenRecord) -> GenRecord:
        rng = self.rng
        body = json.loads(good.value)
        kind = rng.randrange(7)
        if kind == 0:
            raw = good.value[: rng.randrange(1, len(good.value) - 1)]  # truncated JSON
        elif kind == 1:
            body.pop(rng.choice(["event_id", "ts"]))
            raw = json.dumps(body).encode()
        elif kind == 2:
            body["ts"] = "yesterday"
            raw = json.dumps(body).encode()
        elif kind == 3:
            body["type"] = "telepathy"
            raw = json.dumps(body).encode()
        elif kind == 4:
            body["ts"] = -5
            raw = json.dumps(body).encode()
        elif kind == 5:
            body["event_id"] = "x" * 300
            raw = json.dumps(body).encode()
        else:
            raw = b"\xff\xfe" + good.value[2:]
        return GenRecord(good.key, raw, True, "malformed", good.ts)

    # ------------------------------------------------------------------ traffic
    def _session_length(self) -> int:
        mean = self.cfg.session_mean
        if mean is None:
            return self.rng.randint(1, 8)
        u = self.rng.random()  # geometric with this mean, at most 200
        return min(200, 1 + int(math.log(1.0 - u) / math.log(1.0 - 1.0 / mean)))

    def _rank(self, n: int) -> int:
        """An item's rank in a pool of ``n``: exponential, or Zipf (P(rank r) ∝ r^-zipf)."""
        if self.cfg.zipf is None:
            return min(int(self.rng.expovariate(0.15)), n - 1)
        cw = self._zipf_cw.get(n)
        if cw is None:
            acc, cw = 0.0, []
            for r in range(1, n + 1):
                acc += r ** -self.cfg.zipf
                cw.append(acc)
            self._zipf_cw[n] = cw
        return bisect.bisect_left(cw, self.rng.random() * cw[-1])

    def records(self) -> Iterator[GenRecord]:
        """All records in event-time order: catalog and stock first, then traffic."""
        cfg, rng = self.cfg, self.rng
        yield from self._catalog()
        n_top = len(TOP_CATEGORIES)
        tastes = []
        for _ in range(cfg.users):
            w = [rng.random() ** 3 for _ in range(n_top)]
            tastes.append(w)
        consented: set[int] = set()
        shift_n = int(cfg.events * cfg.shift_at) if cfg.shift_at < 1 else -1
        flip_n = int(cfg.events * cfg.flip_at) if cfg.flip_at < 1 else -1
        emitted, shifted = 0, False
        while emitted < cfg.events:
            flipped = 0 <= flip_n <= emitted
            if not shifted and 0 <= shift_n <= emitted:
                shifted = True
                # the taste shift: every user's tastes rotate, and one category trends
                tastes = [w[3:] + w[:3] for w in tastes]
                for w in tastes:
                    w[SHIFT_TREND] = max(w) * 2 + 0.5
            u = int(cfg.users * rng.random() ** 2.5)  # a few heavy users, a long tail
            u = (u * 7919) % cfg.users  # spread the heavy users over the id space
            user, session = f"U{u:06d}", self._id("s")
            batch: list[GenRecord] = []
            if u not in consented or rng.random() < 0.002:
                consented.add(u)
                purposes = [p for p in PURPOSES if rng.random() < 0.9]
                batch.append(self._ev("consent", user, user_id=user, purposes=purposes))
            top = rng.choices(range(n_top), weights=tastes[u])[0]
            pool = self.by_top[top] or list(range(len(self.items)))
            cart: list[_Item] = []
            viewed: list[_Item] = []
            for _ in range(self._session_length()):
                if cfg.revisit and viewed and rng.random() < cfg.revisit:
                    # back to an item of this session: the last one half the time
                    item = viewed[-1] if rng.random() < 0.5 else rng.choice(viewed)
                else:
                    r = self._rank(len(pool))
                    item = self.items[pool[len(pool) - 1 - r if flipped else r]]
                viewed.append(item)
                self.ts += int(rng.expovariate(1 / cfg.mean_gap_ms)) + 1
                kind = "click" if rng.random() < 0.3 else "page_view"
                batch.append(self._ev(kind, user, user_id=user, session_id=session, sku=item.sku))
                if rng.random() < 0.15:
                    cart.append(item)
                    batch.append(self._ev("add_to_cart", user, user_id=user, session_id=session,
                                          sku=item.sku, quantity=1, unit_price=item.price))
            if cart and rng.random() < 0.5:
                lines = [{"sku": it.sku, "quantity": 1, "unit_price": it.price} for it in cart]
                batch.append(self._ev("order", user, user_id=user, session_id=session,
                                      order_id=self._id("o"), lines=lines,
                                      currency=cfg.currency))
                for it in cart:
                    left = self.stock[it.sku] = max(0, self.stock[it.sku] - 1)
                    if left < 3 and rng.random() < 0.5:
                        self.stock[it.sku] = left = left + rng.randint(10, 40)  # restock
                    batch.append(self._ev("inventory", it.sku, sku=it.sku, location="main",
                                          on_hand=left, reserved=0))
            if rng.random() < 0.01:
                it = rng.choice(self.items)
                new = round(it.price * rng.uniform(0.8, 1.1), 2)
                batch.append(self._ev("price", it.sku, sku=it.sku, price=new,
                                      currency=cfg.currency, list_price=it.price))
            for rec in batch:
                if emitted >= cfg.events:
                    break
                if rec.type not in ("catalog", "inventory", "price", "consent"):
                    emitted += 1
                if cfg.malformed_rate and rng.random() < cfg.malformed_rate:
                    rec = self._malformed(rec)
                yield rec


def write_jsonl(path: str, records: Iterator[GenRecord]) -> dict[str, int]:
    """Write records one per line (gzip if ``path`` ends in .gz); returns counts by type."""
    import gzip

    counts: dict[str, int] = {}
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        for r in records:
            f.write(r.value + b"\n")
            counts[r.type] = counts.get(r.type, 0) + 1
    return counts
