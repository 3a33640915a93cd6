"""One contract every feature fold passes, Python and native alike: a snapshot taken between
any two inputs (pickled, as recovery stores state) and restored gives the same outputs as a
run that never stopped; an erased entity leaves no state behind."""

from __future__ import annotations

import pickle

import pytest

from features.category_features import CategoryFold, CategoryInput, PopularFold, popular_inputs
from features.covisitation import CovisFold
from features.interactions import AffinityHint
from features.item_features import ItemFold
from features.native import available, native_covis_fold, native_item_fold, native_user_fold
from features.user_features import UserFold
from tests.features.test_native_folds import H, _canon, _item_stream, _python_run, _user_stream


def _inputs() -> dict[str, list]:
    items = _item_stream()
    users = [x for x in _user_stream(seed=9) if len(x) != 8]
    item, user = ItemFold(H), UserFold(H)
    states: dict = {}
    hints, cats = [], []
    for x in items:
        for o in item.apply(states.setdefault(x[0], item.new()), x):
            if type(o) is AffinityHint:
                hints.append(o)
            elif type(o) is CategoryInput:
                cats.append(o)
    ustates: dict = {}
    pairs = [o for x in users + hints
             for o in user.apply(ustates.setdefault(x[0], user.new()), x) if type(o) is tuple]
    popular = [p for x in items for p in popular_inputs(x)]
    return {"item": items, "user": users + hints, "covis": pairs, "category": cats,
            "popular": popular}


INPUTS = _inputs()
FOLDS = {"item": lambda: ItemFold(H), "user": lambda: UserFold(H), "covis": CovisFold,
         "category": CategoryFold, "popular": PopularFold}
NATIVE = {"item": lambda: native_item_fold(H), "user": lambda: native_user_fold(H),
          "covis": native_covis_fold}


def _run(fold, items: list, states: dict) -> list:
    """Per event: each input applied, then its key's rows (as a replay mirrors)."""
    return _python_run(fold, items, True, states)


@pytest.mark.parametrize("name", sorted(FOLDS))
@pytest.mark.parametrize("cut", [0.3, 0.7])
def test_python_fold_snapshot_round_trip(name, cut):
    items = INPUTS[name]
    assert len(items) > 100, name
    whole = _run(FOLDS[name](), items, {})
    n = int(len(items) * cut)
    fold = FOLDS[name]()
    states: dict = {}
    first = _run(fold, items[:n], states)
    restored = pickle.loads(pickle.dumps(states))
    rest = _run(FOLDS[name](), items[n:], restored)
    assert [_canon(x) for x in first + rest] == [_canon(x) for x in whole]


@pytest.mark.skipif(not available(), reason="bespoke_native is not built")
@pytest.mark.parametrize("name", sorted(NATIVE))
def test_native_shard_snapshot_round_trip(name):
    items = INPUTS[name]
    if name == "covis":  # the native co-visitation shard takes the user shard's batches
        user = native_user_fold(H).new_shard()
        out = user.apply(INPUTS["user"], False) + user.flush()
        items = [b for b in out if type(b).__name__ == "PairBatch"]
    one = NATIVE[name]().new_shard()
    whole = one.apply(items, True) + one.flush()
    n = len(items) // 2
    a = NATIVE[name]().new_shard()
    first = a.apply(items[:n], True) + a.flush()
    b = NATIVE[name]().new_shard()
    b.load(a.dump())
    rest = b.apply(items[n:], True) + b.flush()
    canon = [_canon(x) for x in whole if type(x).__name__ not in ("PairBatch", "HintBatch")]
    got = [_canon(x) for x in first + rest if type(x).__name__ not in ("PairBatch", "HintBatch")]
    assert got == canon
    assert len(canon) > 50


def test_an_erased_user_keeps_only_a_tombstone():
    """Erasure leaves a state equal to a new one but for the erasure's event time (so
    inputs up to it are dropped whatever their arrival), and writes no rows."""
    fold = UserFold(H)
    states: dict = {}
    users = INPUTS["user"]
    _run(fold, users[:500], states)
    victim = max(states, key=lambda k: states[k].n_events)
    assert states[victim].n_events > 3
    t = max(x[2] for x in users[:500])
    out = _run(fold, [(victim, "erase", t, "erase-1")], states)
    fresh = fold.new()
    fresh.erased_until = t
    assert pickle.dumps(states[victim]) == pickle.dumps(fresh)
    assert all(type(o).__name__ == "StorePurge" for o in out)
    late = _run(fold, [x for x in users[:500] if x[0] == victim and len(x) == 7][:3], states)
    assert late and all(type(o).__name__ == "LateEvent" for o in late)
