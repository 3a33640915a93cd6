"""Offer allocation per SKU: scarce stock is never promised to more users than it serves.

Offer proposals are re-keyed by SKU (sharded state); each SKU keeps its active grants
(until their offers expire, in event time). A proposal is granted while the active grants
stay below the units available, otherwise it is refused; either way a decision record goes
out. Granted offers are emitted keyed by user, so they land on the user's partition; decision
records are keyed by the user's pseudonym (records never carry the raw id).

With the ERP adapter (``connectors.enterprise``) in the runtime, a granted offer also
reserves its unit in the ERP (``erp_reserve_stock``, idempotent by the decision id: a replay
after recovery gets the same reservation), and the ERP has the last word: no stock there
refuses the offer, an ERP that cannot answer sends it unreserved (recorded as a fallback).
A reservation is released (``erp_release``, the compensation) when its offer has expired,
in event time: by the next proposal for the SKU, whose record carries the release calls.
"""

from __future__ import annotations

from collections.abc import Callable
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
        # (expires_ts, decision id, ERP reservation id or "")
        self.grants: list[tuple[int, str, str]] = []

    def __getstate__(self) -> Any:
        return (self.grants,)

    def __setstate__(self, st: Any) -> None:
        self.grants = [(g[0], g[1], g[2] if len(g) > 2 else "") for g in st[0]]


ERP_SCOPES = frozenset({"erp:reserve"})


class AllocationFold:
    def __init__(self, runtime: Callable[[], Any] | None = None) -> None:
        """``runtime``: the agent's tool runtime (``agent.tools.ToolRuntime``), asked for
        the ERP reservation tools when it has them."""
        self.runtime = runtime

    def _erp(self) -> Any:
        rt = self.runtime() if self.runtime is not None else None
        return rt if rt is not None and "erp_reserve_stock" in rt.tools else None

    def new(self) -> _SkuGrants:
        return _SkuGrants()

    def rows(self, state: Any, key: str) -> list[Any]:
        return []

    def apply(self, s: _SkuGrants, p: Proposal) -> list[Any]:
        if any(g[1] == p.decision_id for g in s.grants):
            return []  # a replayed proposal that was already granted: nothing new
        erp = self._erp()
        rec = dict(p.record)
        calls = list(rec.get("tool_calls", []))
        for exp, did, rid in s.grants:  # expired offers: their reservations are released
            if exp <= p.ts and rid and erp is not None:
                r = erp.call("erp_release", {"reservation_id": rid}, ERP_SCOPES,
                             idempotency_key=f"release:{did}")
                calls.append(r.record)
        s.grants = [g for g in s.grants if g[0] > p.ts]
        active = len(s.grants)
        granted = active < p.available
        rid = ""
        if granted and erp is not None:
            r = erp.call("erp_reserve_stock", {"sku": p.sku, "qty": 1,
                                               "reference": p.decision_id,
                                               "expires_at": p.expires_ts},
                         ERP_SCOPES, idempotency_key=f"reserve:{p.decision_id}")
            calls.append(r.record)
            if r.outcome in ("ok", "replayed") and r.output:
                rid = str(r.output["reservation_id"])
            elif r.error and r.error.startswith("not found"):  # 409: the ERP has none left
                rec["fallbacks"] = [*rec.get("fallbacks", []), "erp_no_stock"]
                granted = False
            else:
                rec["fallbacks"] = [*rec.get("fallbacks", []), "erp_reservation_unavailable"]
        if calls:
            rec["tool_calls"] = calls[-64:]
            costs = [c["cost"] for c in calls if c.get("cost")]
            if costs:
                rec["cost"] = round(sum(costs), 6)
        if granted:
            s.grants.append((p.expires_ts, p.decision_id, rid))
            offer = event_doc(
                Offer, id=p.decision_id, ts=p.ts, user_id=p.user_id, sku=p.sku,
                discount_pct=p.discount_pct, price=round(p.price * (1 - p.discount_pct / 100), 2),
                currency=p.currency, expires_ts=p.expires_ts, channel="push",
                trigger_event_id=p.trigger_event_id)
            rec["output"] = {"sku": p.sku, "discount_pct": p.discount_pct,
                             "price": offer["price"], "granted_units": active + 1,
                             "available": p.available}
            rec["explanation"] = (rec["explanation"] + f"; unit {active + 1} of {p.available} "
                                  f"available reserved for this offer"
                                  + (f" (ERP reservation {rid})" if rid else ""))
            return [outgoing_doc(OFFERS.name, p.user_id, offer), record_out(rec)]
        rec["suppressed"] = True
        if "erp_no_stock" in rec.get("fallbacks", []):
            rec["output"] = {"sku": p.sku, "available": p.available, "active_grants": active}
            rec["explanation"] = f"offer of {p.sku} not sent: the ERP has no unit left to reserve"
            return [record_out(rec)]
        rec["fallbacks"] = [*rec.get("fallbacks", []), "allocation_refused"]
        rec["output"] = {"sku": p.sku, "available": p.available, "active_grants": active}
        rec["explanation"] = (f"offer of {p.sku} not sent: all {p.available} available units "
                              f"are already promised to {active} active offers")
        return [record_out(rec)]
