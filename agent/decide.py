"""The decision agent per user: for each trigger the planner picks goals
(``agent.plans.plan_goals``) and each goal decides (``agent.feed``, ``agent.offer``,
``agent.configuration``), gated by the shard's policy engine.

``DecisionFold`` is a pure fold for ``operators.sharded_fold``: per user it holds the last
feed sent, recent offer times (for frequency caps) and recent configurations; as shared
state per shard, the policy engine that authenticated control events update in event time.
Ids are deterministic (``<kind>:<user ref>:<trigger event id>``, the user's pseudonym, never
the raw id, which appears only in the feed, offer and configuration payloads that need it);
decisions read item facts from the online store, so a replay after recovery repeats an id
but may see newer facts.

With a model slot (``agent.model_slot``), the candidates are reranked by the newest learned
feed ranker once it has learned enough (``switch_model`` controls pin a version, in event
time like the policy controls), and every served feed logs its items' ranker features with
its impressions, so the attributed examples teach the learner (``agent.learner``) what was
served, with the facts it was served with.
"""

from __future__ import annotations

import math
from typing import Any

from agent.allocation import Proposal
from agent.attribution import Attribution, Example, Impression, pack_rows
from agent.configuration import WINDOW_DAYS, decide_configuration
from agent.cost_budget import CostLedger, DecisionBudget
from agent.feed import Retrieval, decide_feed
from agent.learner import FEED_RANKER, Outcome
from agent.model_slot import ModelSlot
from agent.offer import decide_offer
from agent.offer_bandit import OFFER_BANDIT, OfferImpression, OfferOutcome, offer_outcomes, offered
from agent.plans import Trigger, plan_goals
from agent.policy_gate import RANKER_FACTS, PolicyGate
from agent.records import Records
from agent.review import Hold, Reviews
from features.channels import FEED, POLICY_CHANGES, TRAINING_EXAMPLES
from features.events import (
    Outgoing,
    PolicyChange,
    TrainingExample,
    event_doc,
    outgoing,
    outgoing_doc,
)
from features.ranking import rows_and_scores
from features.score import MODEL_VERSION
from features.store import StorePurge
from features.user_features import UserFeatures
from policies.evaluate import UserContext, top_category
from policies.lifecycle import PolicyEngine
from policies.overrides import OverrideSet
from policies.pack import CostBudgets

NO_BUDGETS = CostBudgets()


def _probability(logit: float) -> float:
    """The logistic function, without overflow for large negative logits."""
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    e = math.exp(logit)
    return e / (1.0 + e)


def model_of_version(version: str) -> str:
    """The model a ``switch_model`` version names: ``offer-bandit-v1.3`` the offer bandit,
    any other the feed ranker."""
    return OFFER_BANDIT if version.startswith("offer-bandit-") else FEED_RANKER


class UserDecisions:
    __slots__ = ("last", "sent", "configs", "imps", "offers")

    def __init__(self) -> None:
        self.last: tuple[str, ...] | None = None
        self.sent: tuple[int, ...] = ()  # event times of offers proposed (for caps)
        self.configs: dict[str, tuple[Any, ...]] = {}  # sku -> last proposed choices
        self.imps: tuple[Impression, ...] = ()  # feeds sent, awaiting outcomes
        self.offers: tuple[OfferImpression, ...] = ()  # offers proposed, awaiting outcomes

    def __getstate__(self) -> Any:
        return (self.last, self.sent, self.configs, self.imps, self.offers)  # never falsy

    def __setstate__(self, st: Any) -> None:
        self.last, self.sent, self.configs = st[:3]
        self.imps = st[3] if len(st) > 3 else ()  # snapshots from before attribution
        self.offers = st[4] if len(st) > 4 else ()  # ... and before the offer bandit


def _example_doc(ref: str, e: Example) -> dict[str, Any]:
    return event_doc(TrainingExample, id=f"ex:{e.decision_id}:{e.position}", ts=e.ts,
                     decision_id=e.decision_id, user_ref=ref, sku=e.sku, position=e.position,
                     label=e.label, outcome=e.outcome, delay_ms=e.delay_ms,
                     model_version=MODEL_VERSION,
                     features=[round(v, 4) for v in e.features] if e.features else None)


def _overridden(ranked: list[tuple[str, float]], feats: list[Any], facts: list[Any] | None,
                suppressed: frozenset[str], pinned: tuple[str, ...]
                ) -> tuple[list[tuple[str, float]], list[Any], list[Any] | None]:
    """The candidates without the suppressed items and with the pinned ones first (above
    the best score; the policy still judges them). A feed with pins is not learned from
    (its pinned items have no logged features)."""
    keep = [i for i, (s, _) in enumerate(ranked) if s not in suppressed and s not in pinned]
    top = max((sc for _, sc in ranked), default=0.0)
    pins = [(s, top + 1.0 + (len(pinned) - j) * 1e-3) for j, s in enumerate(pinned)]
    out = pins + [ranked[i] for i in keep]
    if pins:
        return out, [], None
    return (out, [feats[i] for i in keep] if feats else feats,
            [facts[i] for i in keep] if facts is not None else None)


class DecisionFold:
    """Inputs: (UserFeatures, ranked candidates, Retrieval) per trigger; shared inputs:
    policy control events."""

    def __init__(self, gate: PolicyGate, k: int, ttl_s: int, pseudonym_key: bytes,
                 attribution: Attribution | None = None, models: ModelSlot | None = None,
                 bandit: ModelSlot | None = None, offer_arms: tuple[float, ...] = (),
                 window_days: int = WINDOW_DAYS) -> None:
        """``bandit``: the offer bandit's published versions (``agent.offer_bandit``), which
        choose each offer's discount among ``offer_arms``; None: the fixed discount;
        ``window_days``: the longest lead time a configuration may promise (with the MES)."""
        self.window_days = window_days
        self.gate, self.k, self.ttl = gate, k, ttl_s
        self.records = Records(pseudonym_key)
        self.attribution = attribution if attribution is not None else Attribution()
        self.models = models
        self.bandit = bandit
        self.offer_arms = tuple(sorted(offer_arms))
        self.native = gate.native

    def on_end_shared(self, eng: PolicyEngine) -> list[Any]:
        """The end of a finite input: each decision still held for review gets its record."""
        reviews: Reviews | None = getattr(eng, "reviews", None)
        return reviews.end() if reviews is not None else []

    def budget_of(self, f: UserFeatures, eng: PolicyEngine) -> DecisionBudget | None:
        """The decision's cost budget under the active pack's ``[budgets]`` (None without
        limits); what users spent is kept in the shard's shared state (snapshotted), so
        per-user budgets hold across restarts, and ``per_period`` is per decision shard."""
        compiled = eng.packs.get(eng.active)
        limits = compiled.pack.budgets if compiled is not None else None
        if limits is None or limits == NO_BUDGETS:
            return None
        ledger: CostLedger | None = getattr(eng, "costs", None)
        if ledger is None:
            ledger = eng.costs = CostLedger(limits)  # type: ignore[attr-defined]
        ledger.limits = limits
        return ledger.budget(self.records.user_ref(f.user_id), f.ts)

    def new(self) -> UserDecisions:
        return UserDecisions()

    def new_shared(self) -> PolicyEngine:
        return self.gate.new_engine()

    def apply_shared(self, eng: PolicyEngine, b: Any) -> list[Any]:
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

    @staticmethod
    def _reviews(eng: PolicyEngine) -> Reviews:
        """The shard's decisions held for review (kept with its engine, snapshotted)."""
        reviews: Reviews | None = getattr(eng, "reviews", None)
        if reviews is None:
            reviews = eng.reviews = Reviews()  # type: ignore[attr-defined]
        return reviews

    def _override(self, eng: PolicyEngine, ctl: Any) -> list[Any]:
        """An operator's override or dispute: a new version of the shard's override set
        (every shard applies it; shard 0 logs it to ``policy_changes``)."""
        ovs: OverrideSet | None = getattr(eng, "overrides", None)
        if ovs is None:
            ovs = eng.overrides = OverrideSet()  # type: ignore[attr-defined]
        if ctl.action == "dispute_decision":
            change = ovs.dispute(ctl.decision_id, tuple(ctl.skus), ctl.ts, ctl.issued_by,
                                 ctl.reason)
        else:
            target = ctl.user_ref if ctl.scope == "user" else ctl.segment
            change = ovs.apply(ctl.override_id, ctl.mode, ctl.scope or "all", target,
                               tuple(ctl.skus), ctl.ts, ctl.until_ts, ctl.issued_by)
        if getattr(eng, "shard", 0) != 0:
            return []
        return [outgoing(POLICY_CHANGES.name, "overrides", PolicyChange(
            id=f"override:{ctl.event_id}", ts=ctl.ts, seq=ovs.version,
            action="dispute" if ctl.action == "dispute_decision" else f"override_{ctl.mode}",
            pack=f"overrides@{ovs.version}", detail=change[:2048], issued_by=ctl.issued_by,
            ok=True, trigger_event_id=ctl.event_id))]

    def _due(self, eng: PolicyEngine, ts: int) -> list[Any]:
        """Apply the queued controls up to event time ``ts`` (shard 0 logs the changes),
        and time out the reviews whose deadline passed, in event-time order."""
        pending = getattr(eng, "pending", None)
        reviews: Reviews | None = getattr(eng, "reviews", None)
        out: list[Any] = []
        while pending and pending[0].ts <= ts:
            ctl = pending.pop(0)
            if reviews is not None and reviews.held:
                out += reviews.expire(ctl.ts)
            if ctl.action == "review_decision":
                if reviews is not None:
                    out += reviews.decide(ctl.decision_id, ctl.verdict, ctl.ts, ctl.issued_by,
                                          ctl.reason, ctl.event_id, ctl.discount_pct)
                continue
            if ctl.action in ("override", "dispute_decision"):
                out += self._override(eng, ctl)
                continue
            if ctl.action == "switch_model":  # pin a version (none: follow the newest)
                pins = getattr(eng, "model_pins", None)
                if pins is None:
                    pins = eng.model_pins = {}  # type: ignore[attr-defined]
                if not ctl.version:
                    pins.clear()
                else:
                    pins[model_of_version(ctl.version)] = ctl.version
                continue
            out += self.gate.control(eng, ctl, emit=getattr(eng, "shard", 0) == 0)
        if reviews is not None and reviews.held:
            out += reviews.expire(ts)
        return out

    def _example(self, user_id: str, e: Example, known_ts: int) -> list[Any]:
        """An example's event, and its outcome for the learner, timed when it became known
        (``known_ts``, the user event that settled it: a closed window's negative is known
        only when the user comes back), so the learner's versions and alerts are in the
        event time of the stream."""
        ref = self.records.user_ref(user_id)
        doc = _example_doc(ref, e)
        out: list[Any] = [outgoing_doc(TRAINING_EXAMPLES.name, ref, doc)]
        if e.features and self.models is not None:
            out.append(Outcome(FEED_RANKER, known_ts, doc["id"], tuple(doc["features"]),
                               e.label))
        return out

    def _offer_example(self, user_id: str, o: OfferOutcome) -> list[Any]:
        """An offer's outcome: its training example event, and the bandit's reward."""
        ref = self.records.user_ref(user_id)
        doc = event_doc(TrainingExample, id=f"ex:{o.decision_id}:0", ts=o.ts,
                        decision_id=o.decision_id, decision_type="offer", user_ref=ref,
                        sku=o.sku, position=0, label=o.reward,
                        outcome="order" if o.reward else "expired", delay_ms=o.delay_ms,
                        model_version=o.version or OFFER_BANDIT,
                        discount_pct=o.arm)
        return [outgoing_doc(TRAINING_EXAMPLES.name, ref, doc), o]

    def _rerank(self, f: UserFeatures, ranked: list[tuple[str, float]], found: Retrieval,
                eng: PolicyEngine) -> tuple[list[tuple[str, float]], list[tuple[float, ...]],
                                            str, list[Any] | None, str]:
        """The candidates ranked by the learned model when one serves (else as they came),
        their feature rows and item facts in that order, the model version that ranked them,
        and the drift alert that kept the newest version from ranking ("" if none)."""
        if self.models is None or not ranked:
            return ranked, [], MODEL_VERSION, None, ""
        pin = getattr(eng, "model_pins", {}).get(FEED_RANKER)
        snap = self.models.current(pin, f.ts)
        drift = ""
        if snap is not None and snap.fallback and not pin:  # drifted: the heuristic ranks
            drift, snap = snap.fallback, None
        facts = self.gate.item_facts([s for s, _ in ranked])  # the policy reads them too
        feats, sc = rows_and_scores(ranked, dict(f.interests), found.lists, f.recent, f.cart,
                                    [x[RANKER_FACTS] for x in facts],
                                    snap.weights if snap else None,
                                    snap.intercept if snap else 0.0, self.native,
                                    snap.deep if snap else None)
        if snap is None or sc is None:
            return ranked, feats, MODEL_VERSION, facts, drift
        order = sorted(range(len(ranked)), key=sc.__getitem__, reverse=True)  # stable
        # as probabilities (the model's logistic output; the order is the logits'): the
        # feed rounds the ones it sends
        return ([(ranked[i][0], _probability(sc[i])) for i in order],
                [feats[i] for i in order], snap.version, [facts[i] for i in order], "")

    def rows(self, state: Any, key: str) -> list[Any]:
        return []

    def apply(self, st: UserDecisions, x: tuple[Any, ...], eng: PolicyEngine) -> list[Any]:
        f: UserFeatures
        found: Retrieval
        f, ranked, found = x
        if f.erased:
            st.__init__()  # type: ignore[misc]
            # after this shard's earlier feed writes for the user (same path, in order)
            return [StorePurge("feed", f.user_id)]
        self.gate.ensure(eng)
        out = self._due(eng, f.ts)
        if st.imps:  # this event is the outcome of the feeds sent before it
            st.imps, examples = self.attribution.outcome(st.imps, f.kind, f.skus, f.ts)
            for e in examples:
                out += self._example(f.user_id, e, f.ts)
        if st.offers:  # ... and may settle the offers proposed before it
            st.offers, settled = offer_outcomes(st.offers, f.kind, f.skus, f.ts)
            for o in settled:
                out += self._offer_example(f.user_id, o)
        user = UserContext(f.user_id, frozenset(f.consent) if f.consent is not None else None,
                           sent={"push": st.sent}, purchased=frozenset(f.purchased))
        ranked, feats, model, facts, drift = self._rerank(f, ranked, found, eng)
        if drift and f.consent is not None and "personalization" in f.consent:
            found = found._replace(fallbacks=[*found.fallbacks, f"model_drift:{drift}"])
        ovs: OverrideSet | None = getattr(eng, "overrides", None)
        suppressed: frozenset[str] = frozenset()
        applied: tuple[str, ...] = ()
        if ovs is not None and ovs.active:
            suppressed, pinned, applied = ovs.for_user(
                self.records.user_ref(f.user_id),
                top_category(f.categories[0]) if f.categories else None, f.ts)
            if suppressed or pinned:
                ranked, feats, facts = _overridden(ranked, feats, facts, suppressed, pinned)
        st.last, feed = decide_feed(self, st.last, f, ranked, found, eng, user, model, facts,
                                    applied)
        out += feed
        for o in feed:
            if type(o) is Outgoing and o.channel == FEED.name and o.doc is not None:
                served = tuple(i["sku"] for i in o.doc["items"])
                packed = None
                if feats and served:
                    row_of = {s: r for (s, _), r in zip(ranked, feats, strict=True)}
                    packed = pack_rows([row_of[s] for s in served])
                st.imps, closed = self.attribution.serve(st.imps, o.doc["id"], f.ts, served,
                                                         packed)
                for e in closed:
                    out += self._example(f.user_id, e, f.ts)
        sku = f.skus[0] if f.skus else None
        trigger = Trigger(f.kind, f.user_id, f.event_id, f.ts, sku)
        marketing = f.consent is not None and "marketing" in f.consent
        configurable = (sku is not None and f.kind in ("page_view", "click")
                        and self.gate.configurable(sku))
        for goal in plan_goals(trigger, marketing, len(f.cart), configurable):
            if goal == "push_offer" and sku is not None and sku not in suppressed:
                st.sent, offer = decide_offer(self, st.sent, f, sku, eng, user)
                out += offer
                if self.bandit is not None:
                    for p in offer:
                        if type(p) is Proposal:
                            st.offers = offered(st.offers, (
                                p.decision_id, p.sku, p.discount_pct, p.ts, p.expires_ts,
                                p.record.get("model_version", "")))
            elif goal == "propose_configuration" and sku is not None:
                out += decide_configuration(self, st.configs, f, sku, eng, user)
        if any(type(x) is Hold for x in out):  # held for review: kept in the shard's state
            reviews = self._reviews(eng)
            for x in out:
                if type(x) is Hold:
                    reviews.add(x)
            out = [x for x in out if type(x) is not Hold]
        return out
