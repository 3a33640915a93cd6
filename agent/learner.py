"""The feed ranker's learner: one River model that learns from every attributed impression
(``agent.attribution``: an item acted on within its window is a positive, one left alone a
negative, with the features it was served with) and publishes versions.

``FeedLearner`` is a pure fold for ``operators.sharded_fold`` with a single key (the model's
name): one learner for the whole flow, whatever the number of workers. It takes
``Outcome``s in event time (within a batch, by time and example id), predicts each before
learning it (the prequential log-loss) and, every ``publish_every`` examples, publishes a
snapshot (``agent.ranker.ModelSnapshot``): to the online store under the model's name
(the newest) and under ``name@version`` (each version, for ``switch_model``), and as a
``model_change`` event with the version's loss and share of positives. Scorers on every
worker pick the newest up from the store (``agent.model_slot``). Versions are numbered in
order (``feed-ranker-v1.<n>``); the state (model, counts) is in the snapshot, so a resumed
learner goes on from its last epoch and a replayed publication repeats its id.

>>> learner = FeedLearner(publish_every=2)
>>> st = learner.new()
>>> row = tuple(0.0 for _ in range(18))
>>> learner.apply(st, Outcome("feed_ranker", 1, "ex:a", row, 1))
[]
>>> out = learner.apply(st, Outcome("feed_ranker", 2, "ex:b", row, 0))
>>> [type(o).__name__ for o in out], out[-1].doc["version"]
(['StoreWrite', 'StoreWrite', 'Outgoing'], 'feed-ranker-v1.1')
"""

from __future__ import annotations

from typing import Any, NamedTuple

from agent.ranker import LearnedRanker
from features.channels import MODEL_CHANGES
from features.definitions import MODEL_VIEW
from features.events import ModelChange, event_doc, outgoing_doc
from features.store import StoreWrite

FEED_RANKER = "feed_ranker"


class Outcome(NamedTuple):
    """One labelled example for a model (fields ``ts`` and ``event_id`` order a batch)."""

    model: str
    ts: int
    event_id: str  # the training example's id
    features: tuple[float, ...]
    label: int


class LearnerState:
    __slots__ = ("ranker", "versions", "n", "loss", "positives")

    def __init__(self, ranker: LearnedRanker) -> None:
        self.ranker = ranker
        self.versions = 0  # published so far
        self.n = 0  # examples since the last version
        self.loss = 0.0
        self.positives = 0


def version_name(model: str, n: int) -> str:
    return f"{model.replace('_', '-')}-v1.{n}"


class FeedLearner:
    ordered_input = Outcome  # examples come from every decision shard: event time order

    def __init__(self, publish_every: int = 1000, lr: float = 0.02, l2: float = 1e-5) -> None:
        self.publish_every = max(1, publish_every)
        self.lr, self.l2 = lr, l2

    def new(self) -> LearnerState:
        return LearnerState(LearnedRanker(lr=self.lr, l2=self.l2))

    def rows(self, state: Any, key: str) -> list[Any]:
        return []

    def apply(self, st: LearnerState, x: Outcome) -> list[Any]:
        st.loss += st.ranker.learn_one(x.features, bool(x.label))
        st.n += 1
        st.positives += x.label
        if st.n < self.publish_every:
            return []
        st.versions += 1
        snap = st.ranker.snapshot(version_name(x.model, st.versions))
        fields = snap.fields()
        ttl = MODEL_VIEW.ttl_s
        doc = event_doc(ModelChange, id=f"model:{x.model}:{snap.version}", ts=x.ts,
                        model=x.model, version=snap.version, examples=snap.examples,
                        log_loss=round(min(st.loss / st.n, 1000.0), 6),
                        positives=round(st.positives / st.n, 6),
                        weights={**{k: round(v, 9) for k, v in
                                    st.ranker.model.weights.items()},
                                 "intercept": round(snap.intercept, 9)})
        st.n, st.loss, st.positives = 0, 0.0, 0
        return [StoreWrite("model", x.model, MODEL_VIEW.store_prefix, fields, x.ts, ttl),
                StoreWrite("model", f"{x.model}@{snap.version}", MODEL_VIEW.store_prefix,
                           fields, x.ts, ttl),
                outgoing_doc(MODEL_CHANGES.name, x.model, doc)]
