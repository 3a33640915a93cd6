"""Offer allocation per SKU: scarce stock is never promised to more users than it serves.

Offer proposals are re-keyed by SKU (sharded state); each SKU keeps its active grants
(until their offers expire, in event time). A proposal is granted while the active grants
stay below the units available, otherwise it is refused; either way a decision record goes
out. Granted offers are emitted keyed by user, so they land on the user's partition; decision
records are keyed by the user's pseudonym (records never carry the raw id).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from agent.records import record_out
from features.channels import OFFERS
from features.events import Offer, event_doc, outgoing_doc


class Proposal(NamedTuple):
    sku: str
    user_id: str
    decision_id: str
    ts: int
    expires_ts: int
    discount_pct: float
    price: float
    currency: str
    available: int
    trigger_event_id: str
    record: dict[str, Any]  # the decision record's fields so far (policy, tools, features)


class _SkuGrants:
    __slots__ = ("grants",)

    def __init__(self) -> None:
        self.grants: list[tuple[int, str]] = []  # (expires_ts, decision id)

    def __getstate__(self) -> Any:
        return (self.grants,)

    def __setstate__(self, st: Any) -> None:
        (self.grants,) = st


class AllocationFold:
    def new(self) -> _SkuGrants:
        return _SkuGrants()

    def rows(self, state: Any, key: str) -> list[Any]:
        return []

    def apply(self, s: _SkuGrants, p: Proposal) -> list[Any]:
        if any(d == p.decision_id for _, d in s.grants):
            return []  # a replayed proposal that was already granted: nothing new
        s.grants = [(exp, d) for exp, d in s.grants if exp > p.ts]
        active = len(s.grants)
        granted = active < p.available
        rec = dict(p.record)
        if granted:
            s.grants.append((p.expires_ts, p.decision_id))
            offer = event_doc(
                Offer, id=p.decision_id, ts=p.ts, user_id=p.user_id, sku=p.sku,
                discount_pct=p.discount_pct, price=round(p.price * (1 - p.discount_pct / 100), 2),
                currency=p.currency, expires_ts=p.expires_ts, channel="push",
                trigger_event_id=p.trigger_event_id)
            rec["output"] = {"sku": p.sku, "discount_pct": p.discount_pct,
                             "price": offer["price"], "granted_units": active + 1,
                             "available": p.available}
            rec["explanation"] = (rec["explanation"] + f"; unit {active + 1} of {p.available} "
                                  f"available reserved for this offer")
            return [outgoing_doc(OFFERS.name, p.user_id, offer), record_out(rec)]
        rec["suppressed"] = True
        rec["fallbacks"] = [*rec.get("fallbacks", []), "allocation_refused"]
        rec["output"] = {"sku": p.sku, "available": p.available, "active_grants": active}
        rec["explanation"] = (f"offer of {p.sku} not sent: all {p.available} available units "
                              f"are already promised to {active} active offers")
        return [record_out(rec)]
