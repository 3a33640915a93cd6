"""The decision record and its explanation: one record per decision, whatever its outcome.

A record names the user by pseudonym only (``user_ref``), the trigger, the goal and its
plan, the model and policy versions with every verdict, the tool calls, the features used,
the fallbacks taken, the output and a sentence saying why.
"""

from __future__ import annotations

from typing import Any

from agent.plans import Plan
from features.channels import DECISION_RECORDS
from features.events import DecisionRecord, Outgoing, event_doc, outgoing_doc
from features.user_features import UserFeatures
from policies.lifecycle import record_fields
from policies.privacy import pseudonymize

MAX_EXPLANATION = 2048


class Records:
    """Builds the records of one process's decisions (``key``: the pseudonym key)."""

    def __init__(self, pseudonym_key: bytes) -> None:
        self.key = pseudonym_key

    def user_ref(self, user_id: str) -> str:
        return pseudonymize(user_id, self.key)

    def base(self, did: str, dtype: str, f: UserFeatures, plan: Plan, model: str,
             suppressed: bool, calls: list[Any], outcome: Any, skus: list[str]) -> dict[str, Any]:
        """The fields every record has (``outcome``: the policy engine's, or None when no
        policy was asked)."""
        return {"id": f"rec:{did}", "ts": f.ts, "decision_id": did, "decision_type": dtype,
                "suppressed": suppressed, "user_ref": self.user_ref(f.user_id),
                "trigger_event_id": f.event_id, "goal": plan.goal, "plan": plan.name,
                "plan_version": plan.version, "model_version": model, "tool_calls": calls,
                "cost": calls_cost(calls),
                "features": {"interests": len(f.interests), "candidates": len(skus),
                             "categories": list(f.categories), "purchased": len(f.purchased),
                             "cart": len(f.cart),
                             "consent": ",".join(f.consent) if f.consent is not None else None,
                             "canary": outcome.canary if outcome is not None else False},
                **(record_fields(outcome, skus) if outcome is not None else
                   {"policy_pack": None, "policy_version": None, "verdicts": [],
                    "shadow_differences": []})}

    def suppressed(self, did: str, dtype: str, f: UserFeatures, plan: Plan, model: str,
                   calls: list[Any], outcome: Any, skus: list[str], why: str,
                   fallbacks: list[str]) -> Outgoing:
        """The record of a decision that sends nothing."""
        return record_out({**self.base(did, dtype, f, plan, model, True, calls, outcome, skus),
                           "fallbacks": fallbacks, "output": {}, "explanation": why})


def calls_cost(calls: list[Any]) -> float | None:
    """What the calls cost together; None when none had a price.

    >>> calls_cost([{"tool": "a"}, {"tool": "b", "cost": 0.02}, {"tool": "c", "cost": 0.01}])
    0.03
    >>> calls_cost([{"tool": "a"}]) is None
    True
    """
    costs = [c["cost"] for c in calls if isinstance(c, dict) and c.get("cost")]
    return round(sum(costs), 6) if costs else None


def record_out(rec: dict[str, Any]) -> Outgoing:
    """A finished record on its way to the decision records channel."""
    if len(rec.get("explanation", "")) > MAX_EXPLANATION:
        rec = {**rec, "explanation": rec["explanation"][:MAX_EXPLANATION]}
    return outgoing_doc(DECISION_RECORDS.name, rec["user_ref"], event_doc(DecisionRecord, **rec))


_SOURCE_TEXT = {"interest": "items you viewed", "covis": "what others viewed with them",
                "covis_last": "what others viewed with your last item",
                "sknn": "what shoppers with similar recent items viewed",
                "trending": "what is trending in", "new": "what is new in",
                "popular": "what is popular"}


def sources_text(by: dict[str, int], f: UserFeatures) -> str:
    """'items you viewed (A, B), what is trending in bikes/road (3)...'"""
    parts = []
    cat = f.categories[0] if f.categories else "your categories"
    for src, n in by.items():
        if src == "interest":
            parts.append(f"items you viewed ({', '.join(f.recent[:2]) or n})")
        elif src in ("covis", "covis_last", "sknn", "popular"):
            parts.append(f"{_SOURCE_TEXT[src]} ({n})")
        else:
            parts.append(f"{_SOURCE_TEXT[src]} {cat} ({n})")
    return ", ".join(parts) or "your recent activity"
