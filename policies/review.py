"""Review checkpoints: which actions a person must approve before they go out.

A pack's ``review`` rules (``policies.pack.ReviewParams``) name the offers and
configurations that are held for review: a discount, a price or a promised lead time at or
above a threshold, optionally only for a user's first order. ``review_needed`` returns the
rules that match, with the reason of each, and the deadline after which the safe default
(not sending) applies.

>>> from policies.pack import load_pack
>>> pack = load_pack('''
... pack = "p"
... version = "1"
... [[rules]]
... id = "big-discount"
... type = "review"
... actions = ["offer"]
... params = { min_discount_pct = 15, timeout_s = 600 }
... ''')
>>> review_needed(pack.rules, "offer", ts=1_000, discount_pct=20.0)
(('big-discount: discount 20% >= 15%',), 601000)
>>> review_needed(pack.rules, "offer", ts=1_000, discount_pct=10.0)
((), None)
"""

from __future__ import annotations

from collections.abc import Iterable

from policies.pack import ReviewParams, Rule


def review_needed(rules: Iterable[Rule], action: str, ts: int,
                  discount_pct: float | None = None, price: float | None = None,
                  lead_time_days: int | None = None, first_order: bool = False
                  ) -> tuple[tuple[str, ...], int | None]:
    """(reasons, deadline in event time ms) of the review rules of ``action`` that match;
    ``((), None)`` when no review is needed. The shortest timeout of the matching rules
    sets the deadline."""
    reasons: list[str] = []
    timeout: int | None = None
    for r in sorted(rules, key=lambda r: (-r.priority, r.id)):
        p = r.params
        if not isinstance(p, ReviewParams) or action not in r.actions:
            continue
        if p.first_order_only and not first_order:
            continue
        why = []
        if p.min_discount_pct is not None and discount_pct is not None \
                and discount_pct >= p.min_discount_pct:
            why.append(f"discount {discount_pct:g}% >= {p.min_discount_pct:g}%")
        if p.min_price is not None and price is not None and price >= p.min_price:
            why.append(f"price {price:g} >= {p.min_price:g}")
        if p.min_lead_time_days is not None and lead_time_days is not None \
                and lead_time_days >= p.min_lead_time_days:
            why.append(f"lead time {lead_time_days} days >= {p.min_lead_time_days}")
        if why:
            reasons.append(f"{r.id}: {', '.join(why)}")
            timeout = p.timeout_s if timeout is None else min(timeout, p.timeout_s)
    if not reasons:
        return (), None
    return tuple(reasons), ts + (timeout or 0) * 1000
