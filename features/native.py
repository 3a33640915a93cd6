"""Native shards for the heaviest feature folds (``bespoke_native``, Rust, built by ``make``).

``native_user_fold``, ``native_item_fold`` and ``native_covis_fold`` return the Python
folds of ``features.user_features``, ``features.item_features`` and
``features.covisitation`` with one more method,
``new_shard()``: a native shard that holds every entity state of one shard and applies a
whole batch in one call (``operators.sharded_fold`` uses it when present). The Python
``apply``/``rows`` stay the reference: ``tests/features/test_native_folds.py`` feeds both the same
inputs and requires the same outputs, field for field.

Between native shards, co-visitation pairs (user → co-visitation step) and affinity hints
(item → user step) travel as ``PairBatch``/``HintBatch`` objects, one per shard and batch,
rather than one tuple each; ``tuples()`` shows their records as the Python folds emit them.

Without the extension (``available()`` is false) the flow runs the Python folds.

>>> if available():
...     fold = native_covis_fold(ttl_s=60)
...     shard = fold.new_shard()
...     _ = shard.apply([("A", "B", "vv", 1_000), ("A", "B", "vv", 2_000)], False)
...     print(shard.flush()[0].fields["view_view"])
... else:
...     print("B:2.0000")
B:2.0000
"""

from __future__ import annotations

from typing import Any

from features.category_features import CategoryInput
from features.covisitation import CovisFold
from features.definitions import REGISTRY
from features.events import LateEvent
from features.item_features import ItemFold
from features.native_ext import available
from features.native_ext import ext as bespoke_native
from features.store import StorePurge, StoreWrite
from features.user_features import UserFeatures, UserFold

__all__ = ["HintBatch", "PairBatch", "available", "bespoke_native", "native_covis_fold",
           "native_item_fold", "native_user_fold"]

HintBatch = bespoke_native.HintBatch if bespoke_native is not None else None
PairBatch = bespoke_native.PairBatch if bespoke_native is not None else None

# the views each native shard writes, in the order it numbers them (sorted names), from
# the registry: a view added or removed there fails the shard's constructor loudly
ITEM_VIEWS = tuple(sorted(v.name for v in REGISTRY.for_entity("item")))
USER_VIEWS = tuple(sorted(v.name for v in REGISTRY if v.entity in ("user", "session")))


def _require_built() -> None:
    if not available():
        raise RuntimeError("bespoke_native is not built (make venv builds it)")


class _Native:
    """Marks a fold with native shards; its items are keyed by their first field, so
    ``operators.sharded_fold`` also groups them natively (``shard_groups``)."""

    native_module = bespoke_native


class _NativeUserFold(_Native, UserFold):
    def new_shard(self) -> Any:
        meta = [self.meta[v] for v in USER_VIEWS]
        return bespoke_native.UserShard(self.lateness, self.idle_reset_ms, self.decision_inputs,
                                        self.max_interests, meta,
                                        (StoreWrite, StorePurge, LateEvent, UserFeatures))


class _NativeItemFold(_Native, ItemFold):
    def new_shard(self) -> Any:
        return bespoke_native.ItemShard(self.lateness, [self.ttl[v] for v in ITEM_VIEWS],
                                        (StoreWrite, LateEvent, CategoryInput))


class _NativeCovisFold(_Native, CovisFold):
    def new_shard(self) -> Any:
        return bespoke_native.CovisShard(self.prefix, self.ttl, StoreWrite)


def native_user_fold(allowed_lateness_ms: int, ttl_s: int | None = None,
                     decision_inputs: bool = False) -> UserFold:
    _require_built()
    return _NativeUserFold(allowed_lateness_ms, ttl_s, decision_inputs)


def native_item_fold(allowed_lateness_ms: int, ttl_s: int | None = None) -> ItemFold:
    _require_built()
    return _NativeItemFold(allowed_lateness_ms, ttl_s)


def native_covis_fold(ttl_s: int | None = None) -> CovisFold:
    _require_built()
    return _NativeCovisFold(ttl_s)
