"""Decision step: the agent's goals for each user event, policy-gated and audited.

Sharded by user (see ``operators.sharded_fold``): each shard holds, per user, the last feed
sent, recent offer sends (for frequency caps) and recent configurations, and, as shared
state, the policy engine that control events update. For each trigger the planner picks
goals (``operators.plans.plan_goals``):

- ``refresh_feed``: ranked candidates judged by the policy pack, the top K selected under
  the exposure rules; sent when the feed changed;
- ``push_offer`` (a cart add, with marketing consent): the plan checks inventory and quotes
  a price, the pack judges the offer (stock, price, discount, margin, caps), and a granted
  proposal goes to allocation by SKU (``operators.allocation``);
- ``propose_configuration`` (a view of a configurable product): the configurator picks the
  valid, in-stock option combination the user's attribute affinities like most.

Every decision, suppressed ones too, has a ``decision_record``. Ids are deterministic
(``<kind>:<user ref>:<trigger event id>``, the user's pseudonym, never the raw id, which
appears only in the feed, offer and configuration payloads that need it); decisions read
item facts from the online store, so a replay after recovery repeats an id but may see newer facts.
"""

from __future__ import annotations

from typing import NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.events import (
    RECORD_CHANNEL,
    Configuration,
    Control,
    DecisionRecord,
    FeedUpdate,
    Outgoing,
    event_doc,
    outgoing_doc,
)
from features.score import MODEL_VERSION
from features.store import StoreOp, StorePurge, StoreWrite
from features.user_features import UserFeatures
from operators.allocation import AllocationFold, Proposal
from operators.candidates import FEED_PLAN, Retrieval
from operators.chunks import chunk_flat_map, split_by_type
from operators.plans import AGENT_SCOPES, Plan, Step, Trigger, plan_goals, run_plan
from operators.policy import POLICY_ACTIONS, PolicyGate
from operators.sharded_fold import broadcast, sharded_fold, sharded_fold_keyed
from policies.evaluate import Candidates, UserContext
from policies.lifecycle import PolicyEngine, record_fields
from policies.privacy import decision_id, pseudonymize

FEED_CHANNEL = "feed_updates"
CONFIG_CHANNEL = "configurations"
FEED_VIEW = "feed_v1"
NON_PERSONALIZED = "non-personalized"
OFFER_DISCOUNT_PCT = 10.0
OFFER_TTL_MS = 24 * 3_600_000
MAX_SENT, MAX_CONFIGS = 10, 8

OFFER_PLAN = Plan(name="offer-from-cart", version="1", goal="push_offer", steps=[
    Step(id="stock", tool="inventory_check", inputs={"skus": "trigger.skus"}),
    Step(id="quote", tool="pricing_quote",
         inputs={"sku": "trigger.sku", "discount_pct": f"const:{OFFER_DISCOUNT_PCT}"}),
])
CONFIG_PLAN = Plan(name="configure-viewed", version="1", goal="propose_configuration", steps=[
    Step(id="config", tool="configurator",
         inputs={"sku": "trigger.sku", "affinities": "features.attributes"}),
])


class FeedStreams(NamedTuple):
    outgoing: Stream[list[Outgoing]]
    store_ops: Stream[list[StoreOp]]


class _UserDecisions:
    __slots__ = ("last", "sent", "configs")

    def __init__(self) -> None:
        self.last: tuple[str, ...] | None = None
        self.sent: tuple[int, ...] = ()  # event times of offers proposed (for caps)
        self.configs: dict[str, tuple] = {}  # sku -> last proposed choices

    def __getstate__(self):
        return (self.last, self.sent, self.configs)  # never falsy: __setstate__ runs

    def __setstate__(self, st) -> None:
        self.last, self.sent, self.configs = st


class DecisionFold:
    def __init__(self, gate: PolicyGate, k: int, ttl_s: int, pseudonym_key: bytes) -> None:
        self.gate, self.k, self.ttl, self.key = gate, k, ttl_s, pseudonym_key

    def new(self) -> _UserDecisions:
        return _UserDecisions()

    def new_shared(self) -> PolicyEngine:
        return self.gate.new_engine()

    def apply_shared(self, eng: PolicyEngine, b) -> list:
        """A policy control reaches this shard: it takes effect in event time, for the
        decisions whose trigger is at or after its ``ts`` (queued until one comes), so which
        pack decides does not depend on when the control topic was read."""
        eng.shard = b.shard  # type: ignore[attr-defined]
        pending = getattr(eng, "pending", None)
        if pending is None:
            pending = eng.pending = []  # type: ignore[attr-defined]
        pending.append(b.payload)
        pending.sort(key=lambda c: (c.ts, c.event_id))
        return []

    def _due(self, eng: PolicyEngine, ts: int) -> list:
        """Apply the queued controls up to event time ``ts`` (shard 0 logs the changes)."""
        pending = getattr(eng, "pending", None)
        out: list = []
        while pending and pending[0].ts <= ts:
            out += self.gate.control(eng, pending.pop(0), emit=getattr(eng, "shard", 0) == 0)
        return out

    def rows(self, state, key: str) -> list:
        return []

    def apply(self, st: _UserDecisions, x: tuple, eng: PolicyEngine) -> list:
        f: UserFeatures
        found: Retrieval
        f, ranked, found = x
        if f.erased:
            st.__init__()  # type: ignore[misc]
            # after this shard's earlier feed writes for the user (same path, in order)
            return [StorePurge("feed", f.user_id)]
        self.gate.ensure(eng)
        changes = self._due(eng, f.ts)
        user = UserContext(f.user_id, frozenset(f.consent) if f.consent is not None else None,
                           sent={"push": st.sent})
        out = changes + self._feed(st, f, ranked, found, eng, user)
        sku = f.skus[0] if f.skus else None
        trigger = Trigger(f.kind, f.user_id, f.event_id, f.ts, sku)
        marketing = f.consent is not None and "marketing" in f.consent
        configurable = (sku is not None and f.kind in ("page_view", "click")
                        and self.gate.configurable(sku))
        for goal in plan_goals(trigger, marketing, len(f.cart), configurable):
            if goal == "push_offer" and sku is not None:
                out += self._offer(st, f, sku, eng, user)
            elif goal == "propose_configuration" and sku is not None:
                out += self._configure(st, f, sku, eng, user)
        return out

    # ------------------------------------------------------------------ feed
    def _feed(self, st, f: UserFeatures, ranked, found: Retrieval, eng: PolicyEngine,
              user) -> list:
        skus = [s for s, _ in ranked]
        cands = self.gate.candidates(skus)
        outcome = eng.evaluate(user, "recommend", cands, f.ts)
        r = outcome.result
        if r.suppressed or not r.personalized:
            chosen: list[int] = []  # the app shows its non-personalized default
        else:
            chosen = eng.packs[f"{r.pack}@{r.version}"].select(r, r.allowed, cands, self.k)
        picked = tuple([skus[i] for i in chosen])
        model = MODEL_VERSION if r.personalized else NON_PERSONALIZED
        # nothing new to say (the same feed, or every candidate denied): no feed update, yet
        # the decision is recorded like every other
        unchanged = not r.suppressed and (picked == st.last or (not picked and r.personalized))
        if not unchanged:
            st.last = picked
        ref = pseudonymize(f.user_id, self.key)
        fid = decision_id("feed", ref, f.event_id)
        out: list = []
        if not r.suppressed and not unchanged:
            # built from our own, already validated values: no re-validation on the hot path
            # (tests validate every emitted event against the contracts)
            sources = found.sources
            items, parts = [], []
            for i in chosen:
                sku, sc = ranked[i]
                sc = round(sc, 6)
                items.append({"sku": sku, "score": sc, "reason": sources.get(sku, "interest")})
                parts.append(f"{sku}:{sc:.4f}")
            fu = event_doc(FeedUpdate, id=fid, ts=f.ts, user_id=f.user_id, items=items,
                           trigger_event_id=f.event_id, model_version=model,
                           policy_version=f"{r.pack}@{r.version}")
            encoded = ",".join(parts)
            out += [outgoing_doc(FEED_CHANNEL, f.user_id, fu),
                    StoreWrite("feed", f.user_id, FEED_VIEW,
                               {"items": encoded, "id": fid, "model_version": model,
                                "policy_version": fu["policy_version"]}, f.ts, self.ttl)]
        if r.suppressed:
            why = "suppressed by policy: " + "; ".join(
                v.reason for v in r.verdicts if v.subject < 0)
        elif unchanged and not picked:
            why = (f"no feed update: all {len(skus)} candidates were denied by "
                   f"{r.pack}@{r.version}; the user keeps the current feed")
        elif unchanged:
            why = "no feed update: the ranked, policy-checked feed is the one already sent"
        elif not r.personalized:
            why = "no personalization consent: the non-personalized default applies"
        else:
            by: dict[str, int] = {}
            for sku in picked:
                src = found.sources.get(sku, "interest")
                by[src] = by.get(src, 0) + 1
            why = (f"because of {_sources_text(by, f)}; in stock and within policy "
                   f"({len(r.denied)} of {len(skus)} candidates filtered by "
                   f"{r.pack}@{r.version})")
        fallbacks = list(found.fallbacks)
        if self.gate.store_degraded:
            fallbacks.append("store_unavailable")
        if not r.personalized:
            fallbacks.append("non_personalized")
        out.append(outgoing_doc(RECORD_CHANNEL, ref, event_doc(
            DecisionRecord,
            **self._record_base(fid, "feed_update", f, FEED_PLAN.goal, FEED_PLAN.name,
                                FEED_PLAN.version, model, r.suppressed, found.calls, outcome,
                                skus),
            fallbacks=fallbacks,
            output={"items": list(picked), **({"unchanged": True} if unchanged else {})},
            explanation=why[:2048])))
        return out

    def _record_base(self, did, dtype, f, goal, plan, plan_version, model, suppressed, calls,
                     outcome, skus) -> dict:
        return {"id": f"rec:{did}", "ts": f.ts, "decision_id": did, "decision_type": dtype,
                "suppressed": suppressed, "user_ref": pseudonymize(f.user_id, self.key),
                "trigger_event_id": f.event_id, "goal": goal, "plan": plan,
                "plan_version": plan_version, "model_version": model, "tool_calls": calls,
                "features": {"interests": len(f.interests), "candidates": len(skus),
                             "categories": list(f.categories), "purchased": len(f.purchased),
                             "cart": len(f.cart),
                             "consent": ",".join(f.consent) if f.consent is not None else None,
                             "canary": outcome.canary if outcome is not None else False},
                **(record_fields(outcome, skus) if outcome is not None else
                   {"policy_pack": None, "policy_version": None, "verdicts": [],
                    "shadow_differences": []})}

    def _suppressed(self, did, dtype, f, plan: Plan, calls, outcome, skus, why, fallbacks):
        return outgoing_doc(RECORD_CHANNEL, pseudonymize(f.user_id, self.key), event_doc(
            DecisionRecord,
            **self._record_base(did, dtype, f, plan.goal, plan.name, plan.version,
                                MODEL_VERSION, True, calls, outcome, skus),
            fallbacks=fallbacks, output={}, explanation=why[:2048]))

    # ------------------------------------------------------------------ offer
    def _offer(self, st, f: UserFeatures, sku: str, eng: PolicyEngine, user) -> list:
        did = decision_id("offer", pseudonymize(f.user_id, self.key), f.event_id)
        run = run_plan(OFFER_PLAN, self.gate.runtime, AGENT_SCOPES,
                       {"sku": sku, "skus": [sku], "event_id": f.event_id}, {})
        if not run.ok:
            return [self._suppressed(did, "offer", f, OFFER_PLAN, run.calls, None, [sku],
                                     f"no offer: step {run.failed_step} failed "
                                     f"({run.errors.get(run.failed_step or '', '')})",
                                     run.fallbacks)]
        quote = run.outputs["quote"]
        available = run.outputs["stock"]["available"].get(sku)
        base = self.gate.candidates([sku])
        cands = Candidates(skus=[sku], categories=base.categories, brands=base.brands,
                           prices=[quote["price"]], available=[available],
                           discounts=[OFFER_DISCOUNT_PCT], min_ages=base.min_ages,
                           regions=base.regions, tops=base.tops)
        outcome = eng.evaluate(user, "offer", cands, f.ts)
        r = outcome.result
        if r.suppressed or not r.allowed:
            why = "; ".join(f"{v.rule}: {v.reason}" for v in r.verdicts if v.effect == "deny")
            return [self._suppressed(did, "offer", f, OFFER_PLAN, run.calls, outcome, [sku],
                                     f"offer of {sku} refused by policy ({why})", run.fallbacks)]
        st.sent = (*st.sent, f.ts)[-MAX_SENT:]
        discount = r.discounts[0]
        rec = self._record_base(did, "offer", f, OFFER_PLAN.goal, OFFER_PLAN.name,
                                OFFER_PLAN.version, MODEL_VERSION, False, run.calls, outcome,
                                [sku])
        rec["fallbacks"] = run.fallbacks
        rec["explanation"] = (f"because you added {sku} to your cart; {available} in stock; "
                              f"{discount}% within the price policy")
        return [Proposal(sku, f.user_id, did, f.ts, f.ts + OFFER_TTL_MS, discount,
                         quote["price"], quote["currency"], int(available or 0), f.event_id,
                         rec)]

    # ------------------------------------------------------------------ configuration
    def _configure(self, st, f: UserFeatures, sku: str, eng: PolicyEngine, user) -> list:
        did = decision_id("config", pseudonymize(f.user_id, self.key), f.event_id)
        run = run_plan(CONFIG_PLAN, self.gate.runtime, AGENT_SCOPES,
                       {"sku": sku, "event_id": f.event_id}, {"attributes": f.attributes})
        if not run.ok:
            return [self._suppressed(did, "configuration", f, CONFIG_PLAN, run.calls, None,
                                     [sku], f"no configuration: step {run.failed_step} failed "
                                     f"({run.errors.get(run.failed_step or '', '')})",
                                     run.fallbacks)]
        cfg = run.outputs["config"]
        choices = tuple(sorted(cfg["choices"].items()))
        if st.configs.get(sku) == choices:  # proposed already: recorded, not sent again
            rec = self._record_base(did, "configuration", f, CONFIG_PLAN.goal,
                                    CONFIG_PLAN.name, CONFIG_PLAN.version, MODEL_VERSION,
                                    False, run.calls, None, [sku])
            return [outgoing_doc(RECORD_CHANNEL, rec["user_ref"], event_doc(
                DecisionRecord, **rec, fallbacks=run.fallbacks,
                output={"sku": sku, "choices": [f"{g}:{o}" for g, o in choices],
                        "unchanged": True},
                explanation=f"no configuration sent: the same choices for {sku} were "
                            f"proposed already"))]
        base = self.gate.candidates([sku])
        outcome = eng.evaluate(user, "configure", base, f.ts)
        r = outcome.result
        if r.suppressed or not r.allowed:
            why = "; ".join(f"{v.rule}: {v.reason}" for v in r.verdicts if v.effect == "deny")
            return [self._suppressed(did, "configuration", f, CONFIG_PLAN, run.calls, outcome,
                                     [sku], f"configuration refused by policy ({why})",
                                     run.fallbacks)]
        st.configs[sku] = choices
        if len(st.configs) > MAX_CONFIGS:
            st.configs.pop(next(iter(st.configs)))
        conf = event_doc(Configuration, id=did, ts=f.ts, user_id=f.user_id, sku=sku,
                         choices=dict(choices), price=cfg["price"], currency="EUR",
                         trigger_event_id=f.event_id)
        rec = self._record_base(did, "configuration", f, CONFIG_PLAN.goal, CONFIG_PLAN.name,
                                CONFIG_PLAN.version, MODEL_VERSION, False, run.calls, outcome,
                                [sku])
        liked = f.attributes.split(",")[0].rsplit(":", 1)[0] if f.attributes else "your taste"
        return [outgoing_doc(CONFIG_CHANNEL, f.user_id, conf),
                outgoing_doc(RECORD_CHANNEL, rec["user_ref"], event_doc(
                    DecisionRecord, **rec, fallbacks=run.fallbacks,
                    output={"sku": sku, "choices": [f"{g}:{o}" for g, o in choices]},
                    explanation=f"because you viewed {sku}: options matching {liked}, "
                                f"compatible and in stock"))]


_SOURCE_TEXT = {"interest": "items you viewed", "covis": "what others viewed with them",
                "trending": "what is trending in", "new": "what is new in"}


def _sources_text(by: dict[str, int], f: UserFeatures) -> str:
    """'items you viewed (A, B), what is trending in bikes/road (3)...'"""
    parts = []
    cat = f.categories[0] if f.categories else "your categories"
    for src, n in by.items():
        if src == "interest":
            parts.append(f"items you viewed ({', '.join(f.recent[:2]) or n})")
        elif src == "covis":
            parts.append(f"{_SOURCE_TEXT[src]} ({n})")
        else:
            parts.append(f"{_SOURCE_TEXT[src]} {cat} ({n})")
    return ", ".join(parts) or "your recent activity"


def _controls(ev) -> list:
    return [ev] if type(ev) is Control and ev.action in POLICY_ACTIONS else []


def feed_decision(step_id: str, ranked: Stream[list], events: Stream[list] | None,
                  fold: DecisionFold, shards: int, snapshots: bool) -> FeedStreams:
    """``ranked``: chunks of (UserFeatures, [(sku, score)]) best first; ``events``: chunks of
    authenticated control events (``operators.control``; the policy controls among them are
    broadcast to every decision shard), or None without a control input. Returns chunk
    streams."""
    both = ranked
    if events is not None:
        controls = chunk_flat_map(f"{step_id}_controls", events, _controls)
        both = op.merge(f"{step_id}_in", ranked,
                        broadcast(f"{step_id}_bcast", controls, shards))
    out = sharded_fold_keyed(step_id, both, fold, lambda x: x[0].user_id, shards=shards,
                             mirror_every_s=0, snapshots=snapshots)
    sent, proposals, store_ops = split_by_type(f"{step_id}_split", out, (Outgoing, Proposal),
                                               keyed=True)
    granted = sharded_fold(f"{step_id}_allocate", proposals, AllocationFold(),
                           lambda p: p.sku, shards=shards, mirror_every_s=0,
                           snapshots=snapshots)
    outs = op.merge(f"{step_id}_out", sent, granted)
    return FeedStreams(outs, store_ops)
