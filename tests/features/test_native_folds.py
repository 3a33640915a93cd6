"""The native shards (``bespoke_native``) against the Python folds they replace: the same
inputs must give the same outputs, field for field, in per-event and in coalesced mode, and
across a snapshot/restore."""

from __future__ import annotations

import json
import random

import pytest

from connectors.generator import GenConfig, Generator
from features.covisitation import CovisFold
from features.events import parse_inbound
from features.interactions import AffinityHint, item_inputs, user_inputs
from features.item_features import ItemFold
from features.native import (
    HintBatch,
    PairBatch,
    available,
    native_covis_fold,
    native_item_fold,
    native_user_fold,
)
from features.store import StoreWrite
from features.user_features import UserFold

pytestmark = pytest.mark.skipif(not available(), reason="bespoke_native is not built")

H = 3_600_000


def _canon(x) -> tuple:
    """A comparable form that also tells ints from floats (as JSON would)."""
    if isinstance(x, StoreWrite):
        return ("w", x.entity, x.key, x.view, json.dumps(x.fields), x.ts, x.ttl_s)
    if hasattr(x, "model_dump_json"):
        return ("m", type(x).__name__, x.model_dump_json())
    return ("t", type(x).__name__, repr(x))


def _split(outputs: list) -> tuple[list, list, list]:
    """(other outputs, pairs, hints) in emitted order; native batches expanded to the tuples
    the Python folds emit."""
    other, pairs, hints = [], [], []
    for x in outputs:
        if isinstance(x, PairBatch):
            pairs += x.tuples()
        elif isinstance(x, HintBatch):
            hints += [AffinityHint(*t[:7], tuple(t[7])) for t in x.tuples()]
        elif type(x) is AffinityHint:
            hints.append(x)
        elif type(x) is tuple:
            pairs.append(x)
        else:
            other.append(x)
    return [_canon(x) for x in other], pairs, [_canon(x) for x in hints]


def _user_stream(seed: int = 7) -> list[tuple]:
    """Generated traffic made harder: out-of-order and late events, idle gaps, consent and
    erasure, and the item step's affinity hints interleaved."""
    rng = random.Random(seed)
    events = []
    for r in Generator(GenConfig(seed=seed, users=60, items=40, events=4_000,
                                 mean_gap_ms=20_000, malformed_rate=0.0)).records():
        events.append(parse_inbound(r.value))
    items, fold, hints = {}, ItemFold(H), []
    for e in events:
        for x in item_inputs(e):
            s = items.setdefault(x[0], fold.new())
            hints += [h for h in fold.apply(s, x) if type(h) is AffinityHint]
    stream = [x for e in events for x in user_inputs(e)]
    out: list = []
    hint_iter = iter(hints)
    for i, x in enumerate(stream):
        if rng.random() < 0.03 and x[1] != "consent" and len(x) == 7:
            x = x._replace(ts=x.ts - rng.choice((10_000, 2 * H, 40 * 24 * H)))  # late
        if rng.random() < 0.01 and len(x) == 7:
            x = x._replace(ts=x.ts + 90 * 24 * H)  # idle gap: state expires in event time
        out.append(x)
        if i % 3 == 0:
            out.append((x[0], "consent", x[2], f"c{i}", ("personalization",)))
        if i % 997 == 0:
            out.append((x[0], "erase", x[2], f"x{i}"))
        h = next(hint_iter, None)
        if h is not None:
            out.append(h)
    return out


def _python_run(fold, items: list, per_event: bool, states: dict | None = None) -> list:
    """The Python fold over ``items`` (``states``: carried in and left behind, to resume)."""
    states = {} if states is None else states
    touched, out = set(), []
    for x in items:
        k = x[0]
        st = states.get(k)
        if st is None:
            st = states[k] = fold.new()
        out += fold.apply(st, x)
        if getattr(st, "erased", False):
            del states[k]
            touched.discard(k)
            continue
        if per_event:
            out += fold.rows(st, k)
        else:
            touched.add(k)
    for k in sorted(touched):
        out += fold.rows(states[k], k)
    return out


@pytest.mark.parametrize("decision_inputs", [False, True])
def test_user_shard_matches_python_fold_per_event(decision_inputs):
    stream = _user_stream()
    py = _python_run(UserFold(H, decision_inputs=decision_inputs), stream, per_event=True)
    shard = native_user_fold(H, decision_inputs=decision_inputs).new_shard()
    nat = shard.apply(stream, True)
    assert len(py) > len(stream)  # rows, pairs, late events and decision inputs came out
    kinds = {type(x).__name__ for x in py}
    assert {"StoreWrite", "StorePurge", "LateEvent", "tuple"} <= kinds
    assert _split(nat) == _split(py)


def test_user_shard_matches_python_fold_coalesced_and_across_snapshots():
    stream = _user_stream(seed=11)
    fold = native_user_fold(H, decision_inputs=True)
    py = _python_run(UserFold(H, decision_inputs=True), stream, per_event=False)
    shard, nat = fold.new_shard(), []
    for i in range(0, len(stream), 500):  # batches, with a restore from a snapshot between
        nat += shard.apply(stream[i:i + 500], False)
        restored = fold.new_shard()
        restored.load(shard.dump())
        shard = restored
    nat += shard.flush()
    (n_other, n_pairs, _), (p_other, p_pairs, _) = _split(nat), _split(py)
    assert sorted(n_other) == sorted(p_other) and n_pairs == p_pairs
    assert len(shard) > 0 and shard.touched() == 0


def _item_stream(seed: int = 5) -> list[tuple]:
    """Catalog, stock, price and behaviour inputs, some out of order and some late."""
    rng = random.Random(seed)
    events = [parse_inbound(r.value) for r in Generator(GenConfig(
        seed=seed, users=50, items=30, events=3_000, mean_gap_ms=30_000,
        malformed_rate=0.0)).records()]
    out = []
    for x in (x for e in events for x in item_inputs(e)):
        r = rng.random()
        if r < 0.03:
            x = (*x[:2], x[2] - rng.choice((5_000, 2 * H)), *x[3:])  # out of order, or late
        out.append(x)
    # an item seen before its catalog entry (price band from the event), a category move
    out.insert(0, ("NEW", "add_to_cart", 1_700_000_000_000, "u1", "e1", "s1", 2, 30.0))
    cat = next(x for x in out if x[1] == "catalog")
    out.append((*cat[:2], cat[2] + 1, "other/cat", *cat[4:]))
    return out


@pytest.mark.parametrize("per_event", [True, False])
def test_item_shard_matches_python_fold(per_event):
    stream = _item_stream()
    py = _python_run(ItemFold(H), stream, per_event)
    shard, nat = native_item_fold(H).new_shard(), []
    for i in range(0, len(stream), 700):
        nat += shard.apply(stream[i:i + 700], per_event)
    nat += shard.flush()
    kinds = {type(x).__name__ for x in py}
    assert {"StoreWrite", "LateEvent", "AffinityHint", "CategoryInput"} <= kinds
    (n_other, _, n_hints), (p_other, _, p_hints) = _split(nat), _split(py)
    assert n_hints == p_hints
    if per_event:
        assert n_other == p_other
    else:
        assert sorted(n_other) == sorted(p_other)


def test_batches_between_native_shards_match_python_chain():
    """item → hints → user → pairs → co-visitation, natively (batches, regrouped by shard
    and pickled as across workers) and in Python."""
    import pickle

    import bespoke_native

    items = _item_stream()
    users = [x for x in _user_stream(seed=9) if len(x) != 8]  # the stream's own hints out
    py_item, py_user, py_cov = ItemFold(H), UserFold(H), CovisFold()
    hints = [h for h in _python_run(py_item, items, False) if type(h) is AffinityHint]
    pairs = [p for p in _python_run(py_user, users + hints, False) if type(p) is tuple]
    py_rows = _python_run(py_cov, pairs, False)

    def native_step(fold, chunk: list) -> list:
        out = []
        for _, group in bespoke_native.shard_groups([chunk], 8):
            shard = fold.new_shard()
            out += shard.apply(pickle.loads(pickle.dumps(group)), False) + shard.flush()
        return out

    n_hints = [b for b in native_step(native_item_fold(H), items) if isinstance(b, HintBatch)]
    n_pairs = [b for b in native_step(native_user_fold(H), users + n_hints)
               if isinstance(b, PairBatch)]
    n_rows = native_step(native_covis_fold(), n_pairs)
    assert sorted(map(_canon, n_rows)) == sorted(map(_canon, py_rows))
    assert len(py_rows) >= 20


def test_covis_shard_matches_python_fold():
    rng = random.Random(3)
    skus = [f"S{i}" for i in range(60)]  # more neighbours than the capacity: space-saving
    pairs = [(rng.choice(skus[:5]), rng.choice(skus), rng.choice(("vv", "vb")),
              1_700_000_000_000 + i * 600_000 + rng.randint(-H, H)) for i in range(5_000)]
    py = _python_run(CovisFold(), pairs, per_event=True)
    nat = native_covis_fold().new_shard().apply(pairs, True)
    assert [_canon(x) for x in nat] == [_canon(x) for x in py]
    assert any(len(w.fields["view_view"].split(",")) == 10 for w in py)


def test_evict_returns_owed_rows_and_drops_state():
    fold = native_covis_fold()
    shard = fold.new_shard()
    shard.apply([("A", "B", "vv", 1), ("C", "B", "vv", 2)], False)
    rows = shard.evict(["A", "Z"])
    assert [(w.key, w.fields["view_view"]) for w in rows] == [("A", "B:1.0000")]
    assert shard.keys() == ["C"]


def test_native_shard_groups_match_python():
    import bespoke_native

    from operators.sharded_fold import shard_groups

    rng = random.Random(1)
    chunks = [[(f"k{rng.randint(0, 300)}é", i) for i in range(rng.randint(0, 50))]
              for _ in range(20)]
    assert bespoke_native.shard_groups(chunks, 64) == shard_groups(chunks, lambda x: x[0], 64)


def test_native_rows_carry_exactly_the_registry_fields():
    """The native shards write the views' fields as the registry defines them (their names
    are Rust literals: a field renamed in ``features/definitions.py`` fails here)."""
    from features.definitions import REGISTRY

    views = {v.store_prefix: {f.name for f in v.fields} for v in REGISTRY}
    items = _item_stream()
    users = [x for x in _user_stream(seed=9) if len(x) != 8]
    item, user, covis = native_item_fold(H).new_shard(), native_user_fold(H).new_shard(), \
        native_covis_fold().new_shard()
    out = item.apply(items, False) + item.flush()
    hints = [b for b in out if isinstance(b, HintBatch)]
    out_u = user.apply(users + hints, False) + user.flush()
    pairs = [b for b in out_u if isinstance(b, PairBatch)]
    writes = [w for w in out + out_u + covis.apply(pairs, False) + covis.flush()
              if type(w) is StoreWrite]
    seen: dict[str, set[str]] = {}
    for w in writes:
        assert w.view in views, w.view
        seen.setdefault(w.view, set()).update(w.fields)
    assert len(seen) >= 8, sorted(seen)  # item, user, session and co-visitation views
    for view, fields in seen.items():
        assert fields <= views[view], (view, fields - views[view])
