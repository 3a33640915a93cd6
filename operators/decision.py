"""Decision step: the agent's decisions (``agent.decide``) for each user event, in
sharded Bytewax state, with the offers allocated by SKU (``agent.allocation``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from agent.allocation import AllocationFold, Proposal
from agent.decide import DecisionFold
from agent.learner import FeedLearner, Outcome
from agent.offer_bandit import OfferLearner, OfferOutcome
from agent.policy_gate import POLICY_ACTIONS
from features.events import Control, Outgoing
from features.store import StoreOp
from operators.chunks import chunk_flat_map, split_by_type
from operators.decision_hold import AsOfFold, alloc_pool, facts_step, ordered_release
from operators.sharded_fold import broadcast, sharded_fold, sharded_fold_keyed

# the control actions every decision shard applies in event time (besides the policy ones)
SHARD_ACTIONS = ("switch_model", "review_decision", "override", "dispute_decision")


class FeedStreams(NamedTuple):
    outgoing: Stream[list[Outgoing]]
    store_ops: Stream[list[StoreOp]]


def _controls(ev) -> list:
    return [ev] if type(ev) is Control and (ev.action in POLICY_ACTIONS
                                            or ev.action in SHARD_ACTIONS) else []


def _sku(p: Proposal) -> str:
    return p.sku


def _proposal_order(p: Proposal) -> tuple[int, str]:
    return p.ts, p.decision_id


def _ts(x: Any) -> int:
    return x.ts  # type: ignore[no-any-return]


def _model_of(o: Outcome | OfferOutcome) -> str:
    return o.model


def _learn_pool(o: Outcome | OfferOutcome) -> str:
    return f"learn:{o.model}"


def _outcome_order(o: Outcome | OfferOutcome) -> tuple[int, str]:
    return o.ts, o.event_id


def feed_decision(step_id: str, ranked: Stream[list], events: Stream[list] | None,
                  fold: DecisionFold, shards: int, snapshots: bool,
                  learner: FeedLearner | None = None,
                  bandit: OfferLearner | None = None,
                  tick_ms: int | None = None, facts: Any = None) -> FeedStreams:
    """``ranked``: chunks of (UserFeatures, [(sku, score)]) best first; ``events``: chunks of
    authenticated control events (``operators.control``; the policy and model controls
    among them are broadcast to every decision shard), or None without a control input;
    ``learner``: learns from the attributed examples, one for the flow (``agent.learner``);
    ``bandit``: learns the offers' discounts from their outcomes, one for the flow
    (``agent.offer_bandit``); ``tick_ms``: decisions and allocations read ``facts`` (the
    fact table) as of their trigger's tick (``operators.decision_hold``).
    Returns chunk streams."""
    both = ranked
    if events is not None:
        controls = chunk_flat_map(f"{step_id}_controls", events, _controls)
        both = op.merge(f"{step_id}_in", ranked,
                        broadcast(f"{step_id}_bcast", controls, shards))
    decide: Any = fold
    allocate: Any = AllocationFold(lambda: fold.gate.runtime)
    if tick_ms is not None:  # facts as of each trigger's tick, offers allocated in time order

        def pool(p: Proposal) -> str:
            return alloc_pool(p.sku, shards)

        # offers, and the learners' outcomes, pinned at their trigger's tick for the
        # steps that put them in order (each trigger waits for the models its cut needs:
        # operators.decision_hold.HoldConfig.model_delay_ms)
        passes: dict[type, Any] = {Proposal: pool}
        if learner is not None:
            passes[Outcome] = _learn_pool
        if bandit is not None:
            passes[OfferOutcome] = _learn_pool
        decide = AsOfFold(fold, lambda x: x[0].ts, tick_ms, facts, passes)
        allocate = AsOfFold(allocate, _ts, tick_ms, facts, pool=pool)
    out = sharded_fold_keyed(step_id, both, decide, lambda x: x[0].user_id, shards=shards,
                             mirror_every_s=0, snapshots=snapshots)
    sent, proposals, outcomes, rewards, store_ops = split_by_type(
        f"{step_id}_split", out, (Outgoing, Proposal, Outcome, OfferOutcome), keyed=True)
    if tick_ms is not None:
        proposals = ordered_release(f"{step_id}_offers", proposals, facts, tick_ms, shards,
                                    _sku, _proposal_order, snapshots)
    granted = sharded_fold(f"{step_id}_allocate", proposals,
                           allocate,
                           lambda p: p.sku, shards=shards, mirror_every_s=0,
                           snapshots=snapshots)
    outs = [sent, granted]
    stores = [store_ops]
    pairs: tuple[tuple[str, Stream, Any], ...] = (("learn", outcomes, learner),
                                                  ("bandit", rewards, bandit))
    for name, examples, model in pairs:
        if model is None:
            continue
        if tick_ms is not None:  # learned in (tick, time, id) order; versions in the table
            examples = ordered_release(f"{step_id}_{name}_order", examples, facts, tick_ms,
                                       1, _model_of, _outcome_order, snapshots,
                                       pool_of=_learn_pool)
            model = AsOfFold(model, _ts, tick_ms, facts, pool=_learn_pool, publish=True)
        # one key per model: a single learner whatever the workers
        learned = sharded_fold(f"{step_id}_{name}", examples, model, _model_of, shards=1,
                               mirror_every_s=0, snapshots=snapshots)
        changes, model_writes = split_by_type(f"{step_id}_{name}_split", learned, (Outgoing,))
        outs.append(changes)
        stores.append(model_writes)
        if tick_ms is not None:  # the versions kept in the table's snapshots
            stores.append(facts_step(f"{step_id}_{name}_facts", model_writes, facts, 1,
                                     snapshots, apply=False))
    return FeedStreams(op.merge(f"{step_id}_out", *outs),
                       op.merge(f"{step_id}_store", *stores))
