"""Feature steps: item (catalog enrichment, popularity, stock, price) → user and session →
item-to-item co-visitation, each a keyed fold in Bytewax state.

    events ─┬─ item inputs ─► key sku ─► item fold ─┬─ affinity hints ─┐
            └─ user events, consent, erase ────────────────────────────┴► key user ─► user fold ─┐
                                                        pairs ◄──────────────────────────┤
                          key sku ◄──────────────────────┘                              │
                          covis fold ─► store writes         store writes, late events ◄┘
"""

from __future__ import annotations

from typing import NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.covisitation import CovisFold
from features.events import LateEvent
from features.interactions import AffinityHint, item_inputs, user_inputs
from features.item_features import ItemFold
from features.store import StoreOp
from features.user_features import UserFeatures, UserFold
from operators.keyed_fold import keyed_fold


class FeatureConfig(NamedTuple):
    allowed_lateness_ms: int = 3_600_000
    mirror_every_s: float = 1.0  # 0 = mirror every event (replay)
    idle_evict_s: float | None = None  # wall-clock eviction of idle keys' state
    decision_inputs: bool = False  # emit UserFeatures per user event for the decision path
    ttl_s: int | None = None  # override every view's TTL (tests)


class FeatureStreams(NamedTuple):
    store_ops: Stream[StoreOp]
    late: Stream[LateEvent]
    decision_inputs: Stream[UserFeatures]


def _split(step_id: str, up: Stream, pred) -> tuple[Stream, Stream]:
    b = op.branch(step_id, up, pred)
    return b.trues, b.falses


def feature_pipeline(step_id: str, events: Stream, cfg: FeatureConfig) -> FeatureStreams:
    item_in = op.flat_map(f"{step_id}_item_in", events, item_inputs)
    item_out = keyed_fold(f"{step_id}_item", op.key_on(f"{step_id}_item_key", item_in,
                                                        lambda x: x[0]),
                          ItemFold(cfg.allowed_lateness_ms, cfg.ttl_s), cfg.mirror_every_s,
                          cfg.idle_evict_s)
    hints, item_rest = _split(f"{step_id}_item_split", item_out,
                              lambda x: type(x) is AffinityHint)
    item_late, item_store = _split(f"{step_id}_item_late", item_rest,
                                   lambda x: isinstance(x, LateEvent))

    direct = op.flat_map(f"{step_id}_user_in", events, user_inputs)
    user_in = op.merge(f"{step_id}_user_merge", direct, hints)
    user_out = keyed_fold(f"{step_id}_user", op.key_on(f"{step_id}_user_key", user_in,
                                                        lambda x: x[0]),
                          UserFold(cfg.allowed_lateness_ms, cfg.ttl_s, cfg.decision_inputs),
                          cfg.mirror_every_s, cfg.idle_evict_s)
    pairs, user_rest = _split(f"{step_id}_pairs", user_out, lambda x: type(x) is tuple)
    decisions, user_rest = _split(f"{step_id}_decision_in", user_rest,
                                  lambda x: type(x) is UserFeatures)
    user_late, user_store = _split(f"{step_id}_user_late", user_rest,
                                   lambda x: isinstance(x, LateEvent))

    covis_store = keyed_fold(f"{step_id}_covis", op.key_on(f"{step_id}_covis_key", pairs,
                                                            lambda x: x[0]),
                             CovisFold(cfg.ttl_s), cfg.mirror_every_s, cfg.idle_evict_s)
    store = op.merge(f"{step_id}_store", item_store, user_store, covis_store)
    late = op.merge(f"{step_id}_late", item_late, user_late)
    return FeatureStreams(store, late, decisions)
