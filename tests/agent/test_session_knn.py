"""Session-kNN as a live candidate source: the folds that keep its index and trails, the
``session_neighbours`` tool reading them from a store, and the same lists as the
``session_knn`` baseline (``agent.baselines.SessionKnn``) on a random stream."""

from __future__ import annotations

import random

from agent.baselines import SessionKnn
from agent.store_tools import ALL_SCOPES, store_tools
from agent.tools import ToolRuntime
from connectors.memory_store import MemoryStore
from features.session_index import (
    KEYS_PER_ITEM,
    TRAIL,
    TRAIL_ENTITY,
    ItemKeysFold,
    TrailFold,
    touches,
    trail_inputs,
)
from features.store import StorePurge
from features.user_features import UserFeatures


def _feats(user: str, sku: str, ts: int, kind: str = "page_view",
           erased: bool = False) -> UserFeatures:
    return UserFeatures(user, f"e{ts}", ts, [], (), None, erased=erased, kind=kind,
                        skus=(sku,) if sku else ())


class _Index:
    """The two folds over a store, as the feature flow runs them."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.keys, self.trail = ItemKeysFold(), TrailFold()
        self.states: dict[tuple[str, str], object] = {}
        self.runtime = ToolRuntime(store_tools(self.store), clock=lambda: 0.0)

    def _fold(self, fold, name: str, x) -> list:
        st = self.states.get((name, x[0]))
        if st is None:
            st = self.states[(name, x[0])] = fold.new()
        out = fold.apply(st, x)
        if getattr(st, "erased", False):
            del self.states[(name, x[0])]
            return out
        return out + fold.rows(st, x[0])

    def add(self, feats: list[UserFeatures]) -> list:
        ops = [op for t in touches(feats) for op in self._fold(self.keys, "keys", t)]
        ops += [op for t in trail_inputs(feats) for op in self._fold(self.trail, "trail", t)]
        self.store.apply(ops)
        return ops

    def knn(self, key: str, limit: int = 10) -> list[str]:
        out = self.runtime.call("session_neighbours", {"key": key, "limit": limit},
                                ALL_SCOPES).output
        return [s for s, _ in out["items"]]


def test_item_keys_are_distinct_newest_first_and_bounded():
    idx = _Index()
    for i in range(KEYS_PER_ITEM + 5):
        idx.add([_feats(f"u{i}", "A", 1000 + i)])
    idx.add([_feats("u7", "A", 5000)])  # a returning key moves to the front
    idx.add([_feats("late", "A", 10)])  # out of order, and the list is full: not taken
    (row,) = idx.store.read_many("item", ["A"])
    keys = row["item_keys_v1.keys"].split(",")
    assert keys[0] == "u7" and len(keys) == KEYS_PER_ITEM == len(set(keys))
    assert "late" not in keys and keys[1] == f"u{KEYS_PER_ITEM + 4}"


def test_a_trail_keeps_the_last_distinct_items_and_erasure_purges_it():
    idx = _Index()
    for i in range(TRAIL + 3):
        idx.add([_feats("u1", f"S{i}", 1000 + i)])
    idx.add([_feats("u1", "S5", 2000, kind="add_to_cart")])
    idx.add([_feats("u1", "S6", 2001, kind="consent")])  # not a behaviour event
    (row,) = idx.store.read_many(TRAIL_ENTITY, ["u1"])
    items = row["user_trail_v1.items"].split(",")
    assert items[:2] == ["S5", f"S{TRAIL + 2}"] and len(items) == TRAIL
    ops = idx.add([_feats("u1", "", 3000, erased=True)])
    assert ops == [StorePurge(TRAIL_ENTITY, "u1")]
    assert idx.store.read_many(TRAIL_ENTITY, ["u1"]) == [None]


def test_the_tool_finds_what_similar_keys_viewed_and_forgets_an_erased_key():
    idx = _Index()
    for user, items in (("a", "XY"), ("b", "XYZ"), ("c", "QR")):
        for t, sku in enumerate(items):
            idx.add([_feats(user, sku, 100 * t)])
    assert idx.knn("a") == ["X", "Y", "Z"]  # b shares X and Y; c shares nothing
    assert idx.knn("c") == []
    idx.add([_feats("b", "", 1000, erased=True)])
    assert idx.knn("a") == []  # b's id is still on X's row; its trail is gone


def test_the_tool_gives_the_baselines_lists_on_a_random_stream():
    rnd = random.Random(11)
    items = [f"I{i:02d}" for i in range(60)]
    idx, base = _Index(), SessionKnn(session_items=TRAIL)
    checked = 0
    for t in range(2500):
        key = f"k{rnd.randrange(80)}"
        sku = rnd.choice(items[:rnd.choice((12, 60))])
        idx.add([_feats(key, sku, t * 1000)])
        base.learn(key, sku, t * 1000)
        if t % 10 == 0:
            history = list(base.items[key])  # distinct items, oldest first
            assert idx.knn(key, 10) == base.recommend(key, history, 10), t
            checked += 1
    assert checked == 250


def test_the_decision_log_never_shows_the_key_the_tool_was_asked_for():
    idx = _Index()
    idx.add([_feats("alice", "X", 1)])
    got = idx.runtime.call("session_neighbours", {"key": "alice"}, ALL_SCOPES)
    assert got.outcome == "ok" and got.record["inputs"] == {"key": "[private]"}
