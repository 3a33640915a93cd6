"""Feature steps: item (catalog facts, popularity, stock, price) → category candidate lists,
user and session → item-to-item co-visitation, each a pure fold in sharded Bytewax state.

    events ─┬─ item inputs ─► shard by sku ─► item fold ─┬─ category inputs ─► shard by
            │                                            │   category ─► category fold
            │                                            └─ affinity hints ─┐
            └─ user events, consent, erase ─────────────────────────────────┴► shard by user
                                                                                ▼
                 co-visitation fold ◄─ shard by sku ◄─ pairs ◄─────────── user fold ─► decision
                                                                                       inputs
    decision inputs ─┬─► shard by sku ─► item keys fold  (session-kNN's index)
                     └─► shard by user ─► trail fold     (each key's last items)
    every fold ─► store writes, late events

With ``FeatureConfig.native`` (and ``bespoke_native`` built) the item, user and co-visitation
folds run as native shards (``features.native``) and inputs, hints and pairs travel as native
batches; the inputs must then come from ``features.ingest`` with the same setting (the
validate step of ``flows.main`` uses the one ``native_kernels`` setting for both).
"""

from __future__ import annotations

from typing import NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.category_features import (
    CategoryFold,
    CategoryInput,
    PopularFold,
    PopularInput,
    popular_inputs,
)
from features.covisitation import CovisFold
from features.events import LateEvent
from features.interactions import AffinityHint
from features.item_features import ItemFold
from features.native import (
    HintBatch,
    PairBatch,
    available,
    native_covis_fold,
    native_item_fold,
    native_user_fold,
)
from features.session_index import ItemKeysFold, TrailFold, touches, trail_inputs
from features.store import StoreOp
from features.user_features import UserFeatures, UserFold
from operators.chunks import chunk_flat_map, split_by_type
from operators.sharded_fold import sharded_fold, sharded_fold_keyed


class FeatureConfig(NamedTuple):
    allowed_lateness_ms: int = 3_600_000
    mirror_every_s: float = 1.0  # 0 = mirror every event (replay)
    idle_evict_s: float | None = None  # wall-clock eviction of idle entities' state
    decision_inputs: bool = False  # emit UserFeatures per user event for the decision path
    ttl_s: int | None = None  # override every view's TTL (tests)
    shards: int = 64  # state shards per keyed step
    snapshots: bool = True  # False when recovery is off: no snapshot work at all
    native: bool = True  # native shards for the item, user and co-visitation folds, if built
    remirror: bool = False  # an in-process store: resumed shards write their rows again
    # the item, category and co-visitation rows of every event (the facts decisions read
    # as of their time, operators.decision_hold), whatever mirror_every_s says
    facts_every_event: bool = False
    session_index: bool = False  # session-kNN's index and trails (with decision inputs)


class FeatureStreams(NamedTuple):
    """Chunk streams (lists of items, see ``operators.chunks``)."""

    store_ops: Stream[list[StoreOp]]
    late: Stream[list[LateEvent]]
    decision_inputs: Stream[list[UserFeatures]]


def _first(x: tuple) -> str:
    return x[0]


def feature_pipeline(step_id: str, item_in: Stream[list], direct: Stream[list],
                     cfg: FeatureConfig) -> FeatureStreams:
    """``item_in``, ``direct``: chunk streams of item and user inputs (``features.ingest``)."""
    common: dict = {"shards": cfg.shards, "mirror_every_s": cfg.mirror_every_s,
                    "idle_evict_s": cfg.idle_evict_s, "snapshots": cfg.snapshots,
                    "remirror": cfg.remirror}
    native = cfg.native and available()  # native shards (features.native) where built
    facts: dict = {**common, "mirror_every_s": 0.0} if cfg.facts_every_event else common
    item_fold = (native_item_fold if native else ItemFold)(cfg.allowed_lateness_ms, cfg.ttl_s)
    # the popular list's inputs are read off the item inputs first: a native shard takes a
    # batch's contents when it applies it
    with_popular = chunk_flat_map(f"{step_id}_popular_tee", item_in,
                                  lambda x: [x, *popular_inputs(x)])
    popular_in, item_in = split_by_type(f"{step_id}_popular_split", with_popular,
                                        (PopularInput,))
    item_out = sharded_fold_keyed(f"{step_id}_item", item_in, item_fold, _first, **facts)
    # native shards pass co-visitation pairs and affinity hints as batches (features.native)
    hint_type, pair_type = (HintBatch, PairBatch) if native else (AffinityHint, tuple)
    hints, item_late, category_in, item_store = split_by_type(
        f"{step_id}_item_split", item_out, (hint_type, LateEvent, CategoryInput), keyed=True)
    category_store = sharded_fold(f"{step_id}_category", category_in, CategoryFold(cfg.ttl_s),
                                  _first, **facts)

    user_in = op.merge(f"{step_id}_user_merge", direct, hints)
    user_fold = (native_user_fold if native else UserFold)(
        cfg.allowed_lateness_ms, cfg.ttl_s, cfg.decision_inputs)
    user_out = sharded_fold_keyed(f"{step_id}_user", user_in, user_fold, _first, **common)
    pairs, decisions, user_late, user_store = split_by_type(
        f"{step_id}_user_split", user_out, (pair_type, UserFeatures, LateEvent), keyed=True)

    covis_fold = (native_covis_fold if native else CovisFold)(cfg.ttl_s)
    covis_store = sharded_fold(f"{step_id}_covis", pairs, covis_fold, _first, **facts)
    popular_store = sharded_fold(f"{step_id}_popular", popular_in, PopularFold(cfg.ttl_s),
                                 _first, **facts)
    stores = [item_store, user_store, covis_store, category_store, popular_store]
    if cfg.decision_inputs and cfg.session_index:  # session-kNN's, from the decision inputs
        touched = chunk_flat_map(f"{step_id}_touches", decisions, lambda f: touches([f]))
        trails = chunk_flat_map(f"{step_id}_trail_in", decisions, lambda f: trail_inputs([f]))
        stores += [sharded_fold(f"{step_id}_item_keys", touched, ItemKeysFold(cfg.ttl_s),
                                _first, **facts),
                   sharded_fold(f"{step_id}_trail", trails, TrailFold(cfg.ttl_s), _first,
                                **facts)]
    store = op.merge(f"{step_id}_store", *stores)
    late = op.merge(f"{step_id}_late", item_late, user_late)
    return FeatureStreams(store, late, decisions)
