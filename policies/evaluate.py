"""Deterministic policy evaluation over all candidates of a decision at once.

A pack is compiled per action into: user-level checks (consent, frequency caps), run once
per decision; item-level checks (stock, price, compliance, configuration), merged by type
and run over the candidate columns in one pass; and list-level rules (exposure) applied
when the final top-K is selected (``select``).

Conflicts resolve in a documented order: **deny overrides modify and allow**; among denies
the verdict reported as *the* reason is the one with the highest priority, then the
smallest rule id; modifications (a discount clamped to a ceiling) apply in priority order.
The same inputs and pack always give the same verdicts.

>>> from policies.pack import load_pack
>>> pack = load_pack('''pack = "p"
... version = "1"
... [[rules]]
... id = "in-stock"
... type = "stock"
... params = { min_available = 1 }
... [[rules]]
... id = "no-knives"
... type = "compliance"
... priority = 10
... params = { blocked_categories = ["kitchen/knives"] }
... ''')
>>> cp = compile_pack(pack)
>>> cands = Candidates.of([
...     dict(sku="A", category="bikes", brand="x", price=10.0, available=3),
...     dict(sku="B", category="kitchen/knives/chef", brand="y", price=20.0, available=0)])
>>> r = cp.evaluate(UserContext("u1", frozenset({"personalization"})), "recommend", cands, 0)
>>> r.allowed, r.denied[1].rule
([0], 'no-knives')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from policies.pack import (
    ComplianceParams,
    ConfigurationParams,
    ConsentParams,
    ExposureParams,
    FrequencyCapParams,
    PolicyPack,
    PriceParams,
    PurchasedParams,
    Rule,
    StockParams,
)


class UserContext(NamedTuple):
    user_id: str
    purposes: frozenset[str] | None  # None: no consent record seen (nothing granted)
    age: int | None = None
    region: str | None = None
    sent: dict[str, tuple[int, ...]] = {}  # channel -> event times (ms) of recent sends
    purchased: frozenset[str] = frozenset()  # the items the user bought


@dataclass(slots=True)
class Candidates:
    """Candidate items as columns (one list per attribute, index = candidate)."""

    skus: list[str]
    categories: list[str]
    brands: list[str]
    prices: list[float | None]  # None: unknown (no price or catalog event yet)
    available: list[int | None]
    unit_costs: list[float | None] = field(default_factory=list)
    discounts: list[float] = field(default_factory=list)  # proposed discount %, 0 = none
    min_ages: list[int] = field(default_factory=list)
    regions: list[tuple[str, ...]] = field(default_factory=list)
    config_problems: list[tuple[str, ...]] = field(default_factory=list)  # for "configure"
    tops: list[str] = field(default_factory=list)  # top-level categories ("bikes/road": "bikes")

    def __post_init__(self) -> None:
        n = len(self.skus)
        if not self.tops:
            self.tops = [top_category(c) for c in self.categories]
        if not self.unit_costs:
            self.unit_costs = [None] * n
        if not self.discounts:
            self.discounts = [0.0] * n
        if not self.min_ages:
            self.min_ages = [0] * n
        if not self.regions:
            self.regions = [()] * n
        if not self.config_problems:
            self.config_problems = [()] * n

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> Candidates:
        cols: dict[str, list[Any]] = {"skus": [], "categories": [], "brands": [], "prices": [],
                                 "available": [], "unit_costs": [], "discounts": [],
                                 "min_ages": [], "regions": [], "config_problems": []}
        for r in rows:
            cols["skus"].append(r["sku"])
            cols["categories"].append(r["category"])
            cols["brands"].append(r["brand"])
            cols["prices"].append(r["price"])
            cols["available"].append(r.get("available"))
            cols["unit_costs"].append(r.get("unit_cost"))
            cols["discounts"].append(r.get("discount_pct", 0.0))
            cols["min_ages"].append(r.get("min_age", 0))
            cols["regions"].append(tuple(r.get("regions", ())))
            cols["config_problems"].append(tuple(r.get("config_problems", ())))
        return cls(**cols)

    def __len__(self) -> int:
        return len(self.skus)


class V(NamedTuple):
    """A compact verdict; ``render`` turns it into a sentence fit for a person."""

    rule: str
    priority: int
    effect: str  # "deny" | "modify" | "allow"
    subject: int  # candidate index, -1 for the user / the whole decision
    reason: str  # reason code
    inputs: tuple[Any, ...]  # (name, value) pairs


REASONS = {
    "consent_missing": "the user has not granted {purpose}",
    "cap_reached": "{count} sends on {channel} in the last {window_s} s (cap {max_count})",
    "out_of_stock": "{available} available, at least {min_available} needed",
    "stock_unknown": "no stock information for this item",
    "above_max_price": "price {price} is above the ceiling {max_price}",
    "below_min_price": "price {price} is below the floor {min_price}",
    "price_unknown": "no price information for this item",
    "discount_clamped": "discount {discount_pct}% reduced to the maximum {allowed_pct}%",
    "margin_too_low": "no discount keeps the margin at {min_margin_pct}% (cost {unit_cost})",
    "blocked_category": "category {category} is blocked",
    "age_restricted": "item needs age {min_age}, user age is {age}",
    "region_restricted": "item is not sold in region {region}",
    "invalid_configuration": "configuration invalid: {problems}",
    "brand_share": "brand {brand} already has {share} of the list (max {max_share})",
    "already_purchased": "the user already bought this item",
}


def render(v: V) -> str:
    return REASONS[v.reason].format(**dict(v.inputs))


@dataclass(slots=True)
class PolicyResult:
    pack: str
    version: str
    action: str
    personalized: bool
    suppressed: bool
    allowed: list[int]
    denied: dict[int, V]
    verdicts: list[V]
    discounts: list[float]

    def verdict_set(self) -> set[tuple[Any, ...]]:
        return {(v.rule, v.effect, v.subject, v.reason) for v in self.verdicts}


def top_category(category: str) -> str:
    return category.partition("/")[0]


def _prefixes(category: str) -> list[str]:
    parts = category.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _in_scope(prefixes: list[str], scope: list[str]) -> bool:
    return not scope or any(p in scope for p in prefixes)


class CompiledPack:
    def __init__(self, pack: PolicyPack) -> None:
        self.pack = pack
        order = sorted(pack.rules, key=lambda r: (-r.priority, r.id))
        self.by_action: dict[str, list[Rule]] = {
            a: [r for r in order if a in r.actions] for a in ("recommend", "offer", "configure")}
        self._cat_cache: dict[str, dict[str, tuple[Any, ...]]] = {a: {} for a in self.by_action}
        # action -> (rule | None, max share, min cats)
        self._exposure: dict[str, tuple[Any, ...]] = {}
        # per action, rules split by where they run: once per decision, or per item column
        self._split: dict[str, tuple[list[Rule], ...]] = {}
        for a, rs in self.by_action.items():
            self._split[a] = (
                [r for r in rs if isinstance(r.params, ConsentParams | FrequencyCapParams)],
                [r for r in rs if isinstance(r.params, StockParams)],
                [r for r in rs if isinstance(r.params, ComplianceParams)
                 and r.params.enforce_min_age],
                [r for r in rs if isinstance(r.params, ComplianceParams)
                 and r.params.enforce_regions],
                [r for r in rs if isinstance(r.params, ConfigurationParams)],
                [r for r in rs if isinstance(r.params, PurchasedParams)],
            )

    # -------------------------------------------------------------- per category, cached
    def _category_rules(self, action: str, category: str) -> tuple[Any, ...]:
        """(blocking compliance rule | None, price plan) for one category, cached.

        The price plan merges every price rule in scope into the binding limit of each
        kind, with the rule that sets it: (max_price, rule), (min_price, rule),
        (max_discount_pct, rule), (min_margin_pct, rule); a kind without rules is None.
        When several rules of one kind are violated, the strictest is the one reported.
        """
        cache = self._cat_cache[action]
        hit = cache.get(category)
        if hit is None:
            prefixes = _prefixes(category)
            blocked = None
            plan: list[Any] = [None, None, None, None]
            for r in self.by_action[action]:
                p = r.params
                if blocked is None and isinstance(p, ComplianceParams) and any(
                        x in p.blocked_categories for x in prefixes):
                    blocked = r
                elif isinstance(p, PriceParams) and _in_scope(prefixes, p.categories):
                    for k, val, stricter in ((0, p.max_price, min), (1, p.min_price, max),
                                             (2, p.max_discount_pct, min),
                                             (3, p.min_margin_pct, max)):
                        if val is not None and (plan[k] is None or
                                                stricter(val, plan[k][0]) != plan[k][0]):
                            plan[k] = (val, r)
            hit = cache[category] = (blocked, tuple(plan))
        return hit

    # -------------------------------------------------------------- evaluation
    def evaluate(self, user: UserContext, action: str, c: Candidates, now_ms: int) -> PolicyResult:
        user_rules, stock_rules, age_rules, region_rules, config_rules, bought_rules = \
            self._split[action]
        verdicts: list[V] = []
        personalized, suppressed = True, False
        n = len(c)
        for r in user_rules:  # user-level rules first: once per decision
            p = r.params
            if isinstance(p, ConsentParams):
                if user.purposes is None or p.purpose not in user.purposes:
                    effect = "deny" if p.on_missing == "suppress" else "modify"
                    verdicts.append(V(r.id, r.priority, effect, -1, "consent_missing",
                                      (("purpose", p.purpose),)))
                    if effect == "deny":
                        suppressed = True
                    else:
                        personalized = False
            elif isinstance(p, FrequencyCapParams):
                lo = now_ms - p.window_s * 1000
                count = sum(1 for t in user.sent.get(p.channel, ()) if t > lo)
                if count >= p.max_count:
                    verdicts.append(V(r.id, r.priority, "deny", -1, "cap_reached",
                                      (("count", count), ("channel", p.channel),
                                       ("window_s", p.window_s), ("max_count", p.max_count))))
                    suppressed = True
        denied: dict[int, V] = {}
        discounts = list(c.discounts)
        if suppressed:
            return PolicyResult(self.pack.pack, self.pack.version, action, personalized, True,
                                [], denied, verdicts, discounts)

        def deny(i: int, v: V) -> None:
            verdicts.append(v)
            cur = denied.get(i)
            if cur is None or (-v.priority, v.rule) < (-cur.priority, cur.rule):
                denied[i] = v

        # item-level rules, rule by rule over columns; price and blocking rules per category
        avail, prices, costs = c.available, c.prices, c.unit_costs
        new = tuple.__new__  # builds a V without the NamedTuple constructor's overhead
        for r in stock_rules:
            need = r.params.min_available  # type: ignore[attr-defined]
            unknown_ok = r.params.on_unknown == "allow"  # type: ignore[attr-defined]
            for i in [i for i, a in enumerate(avail)
                      if (a is None and not unknown_ok) or (a is not None and a < need)]:
                a = avail[i]
                deny(i, new(V, (r.id, r.priority, "deny", i, "stock_unknown", ())) if a is None
                     else new(V, (r.id, r.priority, "deny", i, "out_of_stock",
                                  (("available", a), ("min_available", need)))))
        by_cat: dict[str, list[int]] = {}
        for i, cat in enumerate(c.categories):
            g = by_cat.get(cat)
            if g is None:
                by_cat[cat] = [i]
            else:
                g.append(i)
        cache = self._cat_cache[action]
        for cat, idx in by_cat.items():
            hit = cache.get(cat)
            if hit is None:
                hit = self._category_rules(action, cat)
            blocked, plan = hit
            if blocked is not None:
                for i in idx:
                    deny(i, new(V, (blocked.id, blocked.priority, "deny", i, "blocked_category",
                                    (("category", cat),))))
            max_p, min_p, max_d, min_m = plan
            if max_p is not None:
                lim, r = max_p
                for i in idx:
                    price = prices[i]
                    if price is None:
                        if r.params.on_unknown == "deny":
                            deny(i, new(V, (r.id, r.priority, "deny", i, "price_unknown", ())))
                    elif price > lim:
                        deny(i, new(V, (r.id, r.priority, "deny", i, "above_max_price",
                                        (("price", price), ("max_price", lim)))))
            if min_p is not None:
                lim, r = min_p
                for i in idx:
                    price = prices[i]
                    if price is None:
                        if r.params.on_unknown == "deny":
                            deny(i, new(V, (r.id, r.priority, "deny", i, "price_unknown", ())))
                    elif price < lim:
                        deny(i, new(V, (r.id, r.priority, "deny", i, "below_min_price",
                                        (("price", price), ("min_price", lim)))))
            if max_d is not None:
                cap, r = max_d
                for i in idx:
                    d = discounts[i]
                    if d > cap:
                        verdicts.append(new(V, (r.id, r.priority, "modify", i,
                                                "discount_clamped",
                                                (("discount_pct", d), ("allowed_pct", cap)))))
                        discounts[i] = cap
            if min_m is not None:
                margin, r = min_m
                m = 1 + margin / 100
                for i in idx:
                    cost, price = costs[i], prices[i]
                    if cost is None or price is None or price <= 0:
                        continue
                    floor = cost * m
                    d = discounts[i]
                    if price < floor:
                        deny(i, new(V, (r.id, r.priority, "deny", i, "margin_too_low",
                                        (("min_margin_pct", margin), ("unit_cost", cost)))))
                    elif d > 0 and price * (1 - d / 100) < floor:
                        allowed = round(max(0.0, (1 - floor / price) * 100), 2)
                        verdicts.append(new(V, (r.id, r.priority, "modify", i,
                                                "discount_clamped",
                                                (("discount_pct", d),
                                                 ("allowed_pct", allowed)))))
                        discounts[i] = allowed
        if age_rules and any(c.min_ages):
            for r in age_rules:
                for i, need_age in enumerate(c.min_ages):
                    if need_age and (user.age is None or user.age < need_age):
                        deny(i, new(V, (r.id, r.priority, "deny", i, "age_restricted",
                                        (("min_age", need_age), ("age", user.age)))))
        if region_rules and any(c.regions):
            for r in region_rules:
                for i, regs in enumerate(c.regions):
                    if regs and user.region not in regs:
                        deny(i, new(V, (r.id, r.priority, "deny", i, "region_restricted",
                                        (("region", user.region),))))
        if config_rules and any(c.config_problems):
            for r in config_rules:
                for i, probs in enumerate(c.config_problems):
                    if probs:
                        deny(i, new(V, (r.id, r.priority, "deny", i, "invalid_configuration",
                                        (("problems", "; ".join(probs)),))))
        if bought_rules and user.purchased:
            bought = user.purchased
            for r in bought_rules:
                scope = r.params.categories  # type: ignore[attr-defined]
                for i, sku in enumerate(c.skus):
                    if sku in bought and _in_scope(_prefixes(c.categories[i]), scope):
                        deny(i, new(V, (r.id, r.priority, "deny", i, "already_purchased", ())))
        allowed = [i for i in range(n) if i not in denied] if denied else list(range(n))
        return PolicyResult(self.pack.pack, self.pack.version, action, personalized, False,
                            allowed, denied, verdicts, discounts)

    # -------------------------------------------------------------- list-level rules
    def select(self, result: PolicyResult, ranked: list[int], c: Candidates, k: int) -> list[int]:
        """Top ``k`` of ``ranked`` (allowed indices, best first) under exposure rules:
        at most ``max_brand_share`` of the list per brand, and at least ``min_categories``
        distinct top-level categories when the candidates allow it without going over a
        brand's share (the brand share is a deny, so it wins). Skips are recorded as
        verdicts; an item refused for its brand's share is never brought back."""
        plan = self._exposure.get(result.action)
        if plan is None:
            exposure = [r for r in self.by_action[result.action]
                        if isinstance(r.params, ExposureParams)]
            max_share = min((r.params.max_brand_share for r in exposure  # type: ignore[attr-defined]
                             if r.params.max_brand_share), default=1.0)  # type: ignore[attr-defined]
            min_cats = max((r.params.min_categories or 0 for r in exposure), default=0)  # type: ignore[attr-defined]
            plan = self._exposure[result.action] = (
                exposure[0] if exposure else None, max_share, min_cats)
        rule, max_share, min_cats = plan
        if rule is None:
            return ranked[:k]
        cap = max(1, int(max_share * k))
        chosen: list[int] = []
        per_brand: dict[str, int] = {}
        brands = c.brands
        verdicts = result.verdicts
        new = tuple.__new__
        share = None
        capped: set[int] = set()  # refused for their brand's share: never brought back
        for i in ranked:
            b = brands[i]
            n = per_brand.get(b, 0)
            if n >= cap:
                if share is None:
                    share = f"{cap}/{k}"
                verdicts.append(new(V, (rule.id, rule.priority, "deny", i, "brand_share",
                                        (("brand", b), ("share", share),
                                         ("max_share", max_share)))))
                capped.add(i)
                continue
            chosen.append(i)
            per_brand[b] = n + 1
            if len(chosen) == k:
                break
        if min_cats:
            tops = c.tops
            counts: dict[str, int] = {}
            for i in chosen:
                t = tops[i]
                counts[t] = counts.get(t, 0) + 1
            # another category to bring in? (the chosen ones are among the ranked ones)
            if len(counts) < min_cats and len({tops[i] for i in ranked}) > len(counts):
                taken = set(chosen)
                swapped = False
                for cand in ranked:
                    if len(counts) >= min_cats:
                        break
                    if cand in taken or cand in capped:
                        continue
                    t = tops[cand]
                    if t in counts:
                        continue
                    # the lowest-ranked chosen item whose category is represented twice
                    # makes room, unless the newcomer's brand would go over its share
                    for j in range(len(chosen) - 1, -1, -1):
                        tj = tops[chosen[j]]
                        if counts[tj] > 1:
                            break
                    else:
                        break  # no category to spare: the list stays as it is
                    b, bj = brands[cand], brands[chosen[j]]
                    if b != bj and per_brand.get(b, 0) >= cap:
                        continue
                    counts[tj] -= 1
                    counts[t] = 1
                    per_brand[bj] -= 1
                    per_brand[b] = per_brand.get(b, 0) + 1
                    chosen[j] = cand
                    swapped = True
                if swapped:
                    rank_of = {i: pos for pos, i in enumerate(ranked)}
                    chosen.sort(key=rank_of.__getitem__)
        return chosen


def compile_pack(pack: PolicyPack) -> CompiledPack:
    return CompiledPack(pack)
