"""Human review checkpoints: decisions held until a person decides, or their deadline passes.

When the pack's ``review`` rules match an offer or a configuration (``policies.review``),
the decision is not sent: ``hold`` returns a ``Hold`` (kept in the decision shard's shared
state, so recovery keeps it) and a ``review_request`` event. A ``review_decision`` control
event (signed like every control event; its ``issued_by`` is the reviewer) resolves it:

- ``approve``: the held output goes out as decided (an offer to allocation, a
  configuration to its topic);
- ``modify`` (offers): approved with the reviewer's discount, never above what the price
  policy allowed; for a configuration it is an approval;
- ``reject``, or no decision before the deadline (event time): the safe default, nothing is
  sent.

Either way the decision's one record is written when it is resolved, with a ``review``
field saying what happened, who decided and why.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from agent.allocation import Proposal
from agent.records import record_out
from features.channels import CONFIGURATIONS, REVIEW_REQUESTS
from features.events import ReviewRequest, event_doc, outgoing_doc


class Hold(NamedTuple):
    decision_id: str
    kind: str  # "offer" | "configuration"
    user_id: str
    sku: str
    ts: int  # the trigger's event time
    deadline: int  # event time after which the safe default applies
    reasons: tuple[str, ...]
    max_discount: float  # offers: the largest discount the price policy allowed
    payload: Any  # a Proposal (offer), or the configuration event's document
    record: dict[str, Any]  # the decision record's fields, as if sent


def hold(kind: str, user_id: str, sku: str, ts: int, deadline: int, reasons: tuple[str, ...],
         payload: Any, record: dict[str, Any], proposal: dict[str, Any],
         max_discount: float = 0.0) -> list[Any]:
    """A held decision and its review request (outputs of the decision step)."""
    h = Hold(record["decision_id"], kind, user_id, sku, ts, deadline, reasons, max_discount,
             payload, record)
    req = event_doc(ReviewRequest, id=f"review:{h.decision_id}", ts=ts,
                    decision_id=h.decision_id, decision_type=kind,
                    user_ref=record["user_ref"], sku=sku, proposal=proposal,
                    reasons=list(reasons), deadline_ts=deadline,
                    policy_pack=record.get("policy_pack") or "none",
                    policy_version=record.get("policy_version") or "none")
    return [h, outgoing_doc(REVIEW_REQUESTS.name, record["user_ref"], req)]


def resolve(h: Hold, status: str, ts: int, reviewer: str | None = None,
            reason: str | None = None, event_id: str | None = None,
            discount_pct: float | None = None) -> list[Any]:
    """The outputs of a held decision once resolved: ``status`` is approve, modify, reject
    or timed_out."""
    review: dict[str, Any] = {"status": {"approve": "approved", "modify": "modified",
                                         "reject": "rejected"}.get(status, status),
                              "reasons": list(h.reasons), "requested_ts": h.ts,
                              "resolved_ts": max(ts, h.ts)}
    if reviewer is not None:
        review.update(reviewer=reviewer[:128], reason=(reason or "")[:512] or None,
                      review_event_id=event_id)
    review = {k: v for k, v in review.items() if v is not None}
    rec = {**h.record, "review": review}
    if status in ("reject", "timed_out"):
        why = (f"rejected by {reviewer}" + (f": {reason}" if reason else "")
               if status == "reject" else "no review decision before the deadline")
        return [record_out({**rec, "suppressed": True, "output": {},
                            "explanation": f"held for review ({'; '.join(h.reasons)}); "
                                           f"{why}: not sent"})]
    note = f"; approved by {reviewer}" + (f" ({reason})" if reason else "")
    if h.kind == "offer":
        p: Proposal = h.payload
        if status == "modify":
            wanted = discount_pct if discount_pct is not None else p.discount_pct
            given = min(wanted, h.max_discount)
            note = (f"; {given:g}% set by {reviewer}" + (f" ({reason})" if reason else "")
                    + (f", capped by the price policy from {wanted:g}%" if given < wanted else ""))
            p = p._replace(discount_pct=given)
        return [p._replace(record={**rec, "explanation": rec.get("explanation", "") + note})]
    return [outgoing_doc(CONFIGURATIONS.name, h.user_id, h.payload),
            record_out({**rec, "explanation": rec.get("explanation", "") + note})]


class Reviews:
    """The holds of one decision shard (kept in its shared state)."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held: dict[str, Hold] = {}

    def __getstate__(self) -> Any:
        return self.held

    def __setstate__(self, st: Any) -> None:
        self.held = st

    def add(self, h: Hold) -> None:
        self.held.setdefault(h.decision_id, h)

    def expire(self, before: int) -> list[Any]:
        """Resolve the holds whose deadline is before ``before`` (event time): timed out."""
        due = sorted((h for h in self.held.values() if h.deadline < before),
                     key=lambda h: (h.deadline, h.decision_id))
        out: list[Any] = []
        for h in due:
            del self.held[h.decision_id]
            out += resolve(h, "timed_out", h.deadline)
        return out

    def end(self) -> list[Any]:
        """The end of a finite input: the holds still waiting get their records, as
        ``pending`` (not sent; the deadline has not passed in event time)."""
        out: list[Any] = []
        for did in sorted(self.held):
            h = self.held.pop(did)
            review = {"status": "pending", "reasons": list(h.reasons), "requested_ts": h.ts}
            out.append(record_out({**h.record, "review": review, "suppressed": True,
                                   "output": {},
                                   "explanation": f"held for review ({'; '.join(h.reasons)}); "
                                                  f"the input ended before a decision or the "
                                                  f"deadline: not sent"}))
        return out

    def decide(self, decision_id: str, verdict: str, ts: int, reviewer: str,
               reason: str | None, event_id: str, discount_pct: float | None) -> list[Any]:
        """A reviewer's decision; nothing when this shard holds no such decision."""
        h = self.held.pop(decision_id, None)
        if h is None:
            return []
        return resolve(h, verdict, ts, reviewer, reason, event_id, discount_pct)
