"""A resumed shard re-fills an in-process store (operators.sharded_fold, ``remirror``):
after a snapshot and a restore, the rows it writes before its next input are, per entity and
view, the newest rows it had written before the snapshot: the Python and native item and
co-visitation folds alike."""

from __future__ import annotations

import json

import pytest

from connectors.generator import GenConfig, Generator
from features.covisitation import CovisFold
from features.events import parse_inbound
from features.interactions import item_inputs
from features.item_features import ItemFold
from features.native import available, native_item_fold
from features.store import StoreWrite
from operators.sharded_fold import _NativeShardLogic, _ShardLogic

H = 3_600_000


def _newest(rows: list) -> dict:
    out: dict = {}
    for w in rows:
        if isinstance(w, StoreWrite):
            out[(w.entity, w.key, w.view)] = (json.dumps(w.fields, sort_keys=True), w.ts)
    return out


def _items() -> list:
    events = [parse_inbound(r.value) for r in Generator(GenConfig(
        seed=3, users=50, items=30, events=1_500, malformed_rate=0.0)).records()]
    return [x for e in events for x in item_inputs(e)]


FOLDS = [("python", lambda: ItemFold(H), _ShardLogic)]
if available():
    FOLDS.append(("native", lambda: native_item_fold(H, None), _NativeShardLogic))


@pytest.mark.parametrize(("name", "make", "logic"), FOLDS, ids=[f[0] for f in FOLDS])
def test_a_resumed_item_shard_writes_its_newest_rows_again(name, make, logic):
    fold = make()
    first = logic(fold, lambda x: x[0], None, 0.0, None, True)
    (out,), _ = first.on_batch([("0", _items())])
    before = _newest(out)
    assert len(before) > 30
    blob = first.snapshot()
    resumed = logic(fold, lambda x: x[0], blob, 0.0, None, True)
    resumed.remirror_restored()
    (owed,), _ = resumed.on_batch([("0", [])])
    assert _newest(owed) == before
    assert resumed.on_batch([("0", [])])[0] == []  # owed once


def test_a_resumed_covis_shard_writes_its_rows_again():
    pairs = [("A", "B", "view", 1_000), ("A", "C", "view", 2_000), ("B", "A", "buy", 3_000)]
    fold, logic = CovisFold(None), _ShardLogic
    first = logic(fold, lambda x: x[0], None, 0.0, None, True)
    (out,), _ = first.on_batch([("0", pairs)])
    resumed = logic(fold, lambda x: x[0], first.snapshot(), 0.0, None, True)
    resumed.remirror_restored()
    (owed,), _ = resumed.on_batch([("0", [])])
    assert _newest(owed) == _newest(out) != {}
