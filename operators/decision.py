"""Decision step: policy-gated feed updates, with a decision record for each.

Sharded by user (see ``operators.sharded_fold``): each shard holds the last feed sent to
each of its users and, as shared state, the policy engine that control events update.
For every user event the ranked candidates are judged by the active (or canary) policy
pack, the top K are selected under the exposure rules, and, when the feed changed, a
``feed_update`` and its ``decision_record`` go out; a suppressed decision gets a record
too. Ids are deterministic (``feed:<user>:<trigger event id>``); decisions read item facts
from the online store, so a replay after recovery repeats the id but may see newer facts.
"""

from __future__ import annotations

from typing import NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.events import Control, DecisionRecord, FeedUpdate, Outgoing, ScoredItem, outgoing
from features.score import MODEL_VERSION
from features.store import StoreOp, StoreWrite
from features.user_features import UserFeatures
from operators.policy import POLICY_ACTIONS, PolicyGate
from operators.sharded_fold import broadcast, sharded_fold
from policies.evaluate import UserContext
from policies.lifecycle import PolicyEngine, record_fields
from policies.privacy import pseudonymize

FEED_CHANNEL = "feed_updates"
RECORD_CHANNEL = "decision_records"
FEED_VIEW = "feed_v1"
NON_PERSONALIZED = "non-personalized"


class FeedStreams(NamedTuple):
    outgoing: Stream[Outgoing]
    store_ops: Stream[StoreOp]


class _UserDecisions:
    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: tuple[str, ...] | None = None

    def __getstate__(self):
        return (self.last,)  # a falsy state would skip __setstate__ on unpickling

    def __setstate__(self, st) -> None:
        (self.last,) = st


class DecisionFold:
    def __init__(self, gate: PolicyGate, k: int, ttl_s: int, pseudonym_key: bytes) -> None:
        self.gate, self.k, self.ttl, self.key = gate, k, ttl_s, pseudonym_key

    def new(self) -> _UserDecisions:
        return _UserDecisions()

    def new_shared(self) -> PolicyEngine:
        return self.gate.new_engine()

    def apply_shared(self, eng: PolicyEngine, b) -> list:
        return self.gate.control(eng, b.payload, emit=b.shard == 0)

    def rows(self, state, key: str) -> list:
        return []

    def apply(self, st: _UserDecisions, x: tuple, eng: PolicyEngine) -> list:
        f, ranked = x
        f: UserFeatures
        if f.erased:
            st.last = None
            return []
        self.gate.ensure(eng)
        skus = [s for s, _ in ranked]
        score = dict(ranked)
        cands = self.gate.candidates(skus)
        user = UserContext(f.user_id, frozenset(f.consent) if f.consent is not None else None)
        outcome = eng.evaluate(user, "recommend", cands, f.ts)
        r = outcome.result
        if r.suppressed:
            chosen: list[int] = []
        elif not r.personalized:
            chosen = []  # no history may be used: the app shows its non-personalized default
        else:
            chosen = eng.packs[f"{r.pack}@{r.version}"].select(r, r.allowed, cands, self.k)
        picked = tuple(skus[i] for i in chosen)
        model = MODEL_VERSION if r.personalized else NON_PERSONALIZED
        if not r.suppressed and (picked == st.last or (not picked and r.personalized)):
            return []  # nothing new to say
        st.last = picked
        fid = f"feed:{f.user_id}:{f.event_id}"
        out: list = []
        if not r.suppressed:
            # built from our own, already validated values: no re-validation on the hot path
            # (tests validate every emitted event against the contracts)
            fu = FeedUpdate.model_construct(
                id=fid, ts=f.ts, user_id=f.user_id,
                items=[ScoredItem.model_construct(sku=skus[i], score=round(score[skus[i]], 6))
                       for i in chosen],
                trigger_event_id=f.event_id, model_version=model,
                policy_version=f"{r.pack}@{r.version}")
            encoded = ",".join(f"{i.sku}:{i.score:.4f}" for i in fu.items)
            out += [outgoing(FEED_CHANNEL, f.user_id, fu),
                    StoreWrite("feed", f.user_id, FEED_VIEW,
                               {"items": encoded, "id": fid, "model_version": model,
                                "policy_version": fu.policy_version or ""}, f.ts, self.ttl)]
        out.append(outgoing(RECORD_CHANNEL, f.user_id, self._record(fid, f, r, outcome, skus,
                                                                   chosen, model)))
        return out

    def _record(self, fid, f, r, outcome, skus, chosen, model) -> DecisionRecord:
        picked = [skus[i] for i in chosen]
        denied = len(r.denied)
        if r.suppressed:
            why = "suppressed by policy: " + "; ".join(
                v.reason for v in r.verdicts if v.subject < 0)
        elif not r.personalized:
            why = "no personalization consent: the non-personalized default applies"
        else:
            seen = ", ".join(picked[:2]) or "nothing yet"
            why = (f"because you showed interest in {seen}; in stock and within policy "
                   f"({denied} of {len(skus)} candidates filtered by {r.pack}@{r.version})")
        return DecisionRecord.model_construct(
            id=f"rec:{fid}", ts=f.ts, decision_id=fid, decision_type="feed_update",
            suppressed=r.suppressed, user_ref=pseudonymize(f.user_id, self.key),
            trigger_event_id=f.event_id, goal="refresh_feed", plan="recent-interest-feed",
            plan_version="1", model_version=model,
            features={"interests": len(f.interests), "purchased": len(f.purchased),
                      "consent": ",".join(f.consent) if f.consent is not None else None,
                      "canary": outcome.canary},
            fallbacks=[] if r.personalized else ["non_personalized"],
            output={"items": picked}, explanation=why[:2048], **record_fields(outcome, skus))


def _controls(ev) -> list:
    return [ev] if isinstance(ev, Control) and ev.action in POLICY_ACTIONS else []


def feed_decision(step_id: str, ranked: Stream, events: Stream, fold: DecisionFold,
                  shards: int, snapshots: bool) -> FeedStreams:
    """``ranked``: (UserFeatures, [(sku, score)]) best first; ``events``: validated events
    (policy control events among them are broadcast to every decision shard)."""
    controls = op.flat_map(f"{step_id}_controls", events, _controls)
    both = op.merge(f"{step_id}_in", ranked, broadcast(f"{step_id}_bcast", controls, shards))
    out = sharded_fold(step_id, both, fold, lambda x: x[0].user_id, shards=shards,
                       mirror_every_s=0, snapshots=snapshots)
    split = op.branch(f"{step_id}_split", out, lambda x: isinstance(x, Outgoing))
    return FeedStreams(split.trues, split.falses)  # type: ignore[arg-type]
