"""The live learner (agent.learner) and the scorers' model slot (agent.model_slot)."""

import json
import math
import random

import pytest

from agent.learner import FEED_RANKER, FeedLearner, Outcome
from agent.model_slot import ModelSlot
from agent.ranker import FEATURES, ModelSnapshot, parse_snapshot
from connectors.memory_store import MemoryStore
from features.channels import MODEL_CHANGES
from features.definitions import MODEL_VIEW
from features.events import ModelChange
from features.store import StoreWrite

I_POP = FEATURES.index("pop")


def _outcomes(n: int, seed: int = 1) -> list[Outcome]:
    """Popular items get acted on: the label follows the 'pop' feature."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        row = [0.0] * len(FEATURES)
        row[I_POP] = rnd.random()
        out.append(Outcome(FEED_RANKER, 1000 + i, f"ex:{i}", tuple(row),
                           int(rnd.random() < row[I_POP])))
    return out


def test_versions_are_published_every_n_examples_with_their_prequential_loss():
    learner = FeedLearner(publish_every=100)
    st = learner.new()
    store = MemoryStore()
    changes = []
    for o in _outcomes(450):
        for x in learner.apply(st, o):
            if type(x) is StoreWrite:
                store.apply([x])
            else:
                assert x.channel == MODEL_CHANGES.name
                changes.append(ModelChange.model_validate_json(x.value))
    assert [c.version for c in changes] == [f"feed-ranker-v1.{i}" for i in (1, 2, 3, 4)]
    assert [c.examples for c in changes] == [100, 200, 300, 400]
    assert [c.id for c in changes] == [f"model:feed_ranker:{c.version}" for c in changes]
    # it learns: the loss of later versions' examples is lower than the first's, and the
    # 'pop' weight goes up
    assert changes[-1].log_loss < changes[0].log_loss
    assert changes[-1].weights["pop"] > changes[0].weights["pop"] > 0
    (row,) = store.read_many("model", [FEED_RANKER])
    assert row[MODEL_VIEW.column("version")] == "feed-ranker-v1.4"
    assert store.read_many("model", [f"{FEED_RANKER}@feed-ranker-v1.2"])[0] is not None


def test_the_same_examples_give_the_same_versions():
    def weights(seq):
        learner = FeedLearner(publish_every=50)
        st = learner.new()
        return [x.doc["weights"] for o in seq for x in learner.apply(st, o)
                if type(x) is not StoreWrite]

    assert weights(_outcomes(200)) == weights(_outcomes(200))


def _row(snap: ModelSnapshot) -> dict:
    return {f"{MODEL_VIEW.store_prefix}.{k}": v for k, v in snap.fields().items()}


class _Store:
    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.reads = 0
        self.down = False

    def read_many(self, entity, keys):
        assert entity == "model"
        self.reads += 1
        if self.down:
            raise ConnectionError("store down")
        return [self.rows.get(k) for k in keys]


def _snap(version: str, examples: int, w: float) -> ModelSnapshot:
    return ModelSnapshot(version, tuple(w if n == "pop" else 0.0 for n in FEATURES), 0.0,
                         examples)


def test_the_slot_swaps_to_the_newest_keeps_the_last_good_and_follows_a_pin():
    store, now = _Store(), [0.0]
    slot = ModelSlot(FEED_RANKER, lambda: store, refresh_s=5.0, min_examples=100,
                     clock=lambda: now[0])
    assert slot.current(None) is None  # nothing published: the heuristic ranks
    store.rows[FEED_RANKER] = _row(_snap("v1", 50, 1.0))
    now[0] = 5.0
    assert slot.current(None) is None  # too few examples yet
    store.rows[FEED_RANKER] = _row(_snap("v2", 150, 2.0))
    assert slot.current(None) is None  # read again only after refresh_s
    now[0] = 10.0
    assert slot.current(None).version == "v2"
    reads = store.reads
    slot.current(None)
    assert store.reads == reads  # within the refresh period: no read
    # corrupt rows and an outage keep the last good version
    for bad in ({"weights": "{not json"}, {"weights": json.dumps({"pop": math.inf})},
                {"weights": json.dumps({"bogus": 1.0})}, {"version": ""}):
        store.rows[FEED_RANKER] = {**_row(_snap("v3", 200, 3.0)),
                                   **{f"{MODEL_VIEW.store_prefix}.{k}": v
                                      for k, v in bad.items()}}
        now[0] += 5
        assert slot.current(None).version == "v2"
    assert slot.refused == 4
    store.down = True
    now[0] += 5
    assert slot.current(None).version == "v2"
    store.down = False
    # a pin reads its own row; unpinned, the newest again
    store.rows[f"{FEED_RANKER}@v1b"] = _row(_snap("v1b", 120, 0.5))
    assert slot.current("v1b").version == "v1b"
    store.rows[FEED_RANKER] = _row(_snap("v4", 300, 4.0))
    now[0] += 5
    assert slot.current(None).version == "v4"
    assert slot.current("missing") is None  # a pin to nothing published: the heuristic


@pytest.mark.parametrize("weights", ['{"pop": 1e7}', '[1, 2]', '{"pop": true}', "null"])
def test_snapshots_out_of_bounds_are_refused(weights):
    with pytest.raises(ValueError):
        parse_snapshot({"version": "v", "weights": weights})


def test_the_slot_sees_a_version_marked_and_unmarked_by_the_learner():
    """A drift mark republishes the same version and weights: the slot must still see it."""
    store, now = _Store(), [0.0]
    slot = ModelSlot(FEED_RANKER, lambda: store, refresh_s=5.0, clock=lambda: now[0])
    snap = _snap("v7", 500, 1.0)
    for mark in ("", "drift:feed_ranker:9", ""):
        store.rows[FEED_RANKER] = _row(snap._replace(fallback=mark))
        now[0] += 5
        assert slot.current(None).fallback == mark
    # event time also moves the refresh: a replay far ahead of the clock reads again
    store.rows[FEED_RANKER] = _row(_snap("v8", 600, 1.0))
    assert slot.current(None, ts=10_000).version == "v8"


def test_publications_never_go_back_in_event_time():
    """An example older than one already learned (another shard's, late) publishes at the
    newest time learned: the store would refuse an older write, and lose a newer version."""
    learner = FeedLearner(publish_every=1)
    st = learner.new()
    store = MemoryStore()
    row = tuple(0.0 for _ in FEATURES)
    for i, ts in enumerate((1000, 5000, 3000)):  # the third is late
        store.apply([x for x in learner.apply(st, Outcome(FEED_RANKER, ts, f"e{i}", row, 1))
                     if type(x) is StoreWrite])
    (got,) = store.read_many("model", [FEED_RANKER])
    assert got[MODEL_VIEW.column("version")] == "feed-ranker-v1.3"


def test_outcomes_served_by_an_older_or_newer_version_still_teach_the_model():
    """An impression served before an upgrade (a row of the first 20 features) and one from
    a newer version (a longer row) settle after it: both are learned, as rows of this
    version's width (features are only appended), and nothing raises."""
    learner = FeedLearner(publish_every=100)
    st = learner.new()
    old = (1.0,) * 20
    newer = (1.0,) * (len(FEATURES) + 3)
    for i, row in enumerate((old, newer, old)):
        assert learner.apply(st, Outcome(FEED_RANKER, i + 1, f"ex:{i}", row, i % 2)) == []
    assert st.n == 3 and st.ranker.learned == 3
    padded = FeedLearner(publish_every=100)
    ps = padded.new()
    for i, row in enumerate((old, newer, old)):
        fit = row[:len(FEATURES)] + (0.0,) * (len(FEATURES) - len(row[:len(FEATURES)]))
        padded.apply(ps, Outcome(FEED_RANKER, i + 1, f"ex:{i}", fit, i % 2))
    assert st.ranker.model.weights == ps.ranker.model.weights
