"""A learned ranker: online logistic regression (River) over per-candidate features, the
probability that a candidate is the user's next item.

Features of a candidate (``features``): the heuristic score and rank, each retrieval
source's score scaled to its best (interest, co-visitation, trending, new arrivals, the last
item's co-visitation, session-kNN, the popular list), the number of
sources that found it, where it sits among the user's recent items, whether it is the last
one or in the cart, a few crosses, and the item's popularity (scaled to the best candidate's),
trend and conversion rate. Scoring is a dot product over the model's weights
(``scores``), not one ``predict_proba_one`` per candidate; rows are tuples in the order of
``FEATURES`` (dicts only for the rows learned). ``learn`` takes the candidates of
a served decision and the item that came next: the next item is the positive; the negatives
are the candidates scored close to or above it, and a few others (tuned on generated data:
8 negatives spread over the list gave HR@10 0.445, these 0.470, at a smaller learning rate).

The model starts from a prior (``PRIOR``: the user's recent items first, then the last item's
co-visitation neighbours, the rule that is hard to beat on session data), so the first
decisions of a replay are not random; learning moves it from there.

>>> r = LearnedRanker()
>>> cands = [("A", 1.0), ("B", 0.5)]
>>> feats = r.features(cands, {"A": 1.0}, {}, ("B",), ())
>>> [s for s, _ in r.rank(cands, feats)]   # the prior: the item seen last first
['B', 'A']
>>> for _ in range(200):
...     _ = r.learn(feats, ["A", "B"], "A")
>>> [s for s, _ in r.rank(cands, feats)]   # this user's next item is A: learned
['A', 'B']
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

from river import linear_model, optim

from features.definitions import ITEM_POPULARITY
from features.ranking import FEATURES, features, scores

POPULARITY, TRENDING, CONVERSION = (ITEM_POPULARITY.column(c)
                                    for c in ("popularity", "trending", "conversion_rate"))


def _named(row: tuple[float, ...]) -> dict[str, float]:
    """A row as River takes it (the zero features left out, as sparse input)."""
    return {k: v for k, v in zip(FEATURES, row, strict=True) if v}


def item_facts(row: dict[str, Any] | None) -> tuple[float, float, float]:
    """A candidate's (popularity, trend, conversion rate) from its store row."""
    if not row:
        return (0.0, 0.0, 0.0)
    return (float(row.get(POPULARITY, 0.0)), float(row.get(TRENDING, 0.0)),
            float(row.get(CONVERSION, 0.0)))


class ModelSnapshot(NamedTuple):
    """A published version of the ranker: what a scorer needs (no River object)."""

    version: str
    weights: tuple[float, ...]  # in FEATURES order
    intercept: float
    examples: int
    fallback: str = ""  # a drift alert's id: the version must not rank (agent.drift)

    def scores(self, rows: list[tuple[float, ...]]) -> list[float]:
        return scores(rows, self.weights, self.intercept)

    def named_weights(self) -> dict[str, float]:
        """The weights by feature (the non-zero ones) and ``intercept``."""
        named = {n: w for n, w in zip(FEATURES, self.weights, strict=True) if w}
        return {**named, "intercept": self.intercept}

    def fields(self) -> dict[str, Any]:
        """The snapshot as the online store keeps it (``features.definitions.MODEL_VIEW``)."""
        return {"version": self.version, "examples": self.examples,
                "weights": json.dumps(self.named_weights(), sort_keys=True),
                "fallback": self.fallback}


def parse_snapshot(fields: dict[str, Any]) -> ModelSnapshot:
    """A snapshot from its store fields; ValueError when anything is off (unknown feature,
    a weight that is not a finite number of sane size, no version): a scorer then keeps
    its last good model.

    >>> snap = parse_snapshot({"version": "v1", "examples": 3,
    ...                        "weights": '{"recent": 2.0, "intercept": -1.5}'})
    >>> snap.scores([tuple(1.0 if n == "recent" else 0.0 for n in FEATURES)])
    [0.5]
    >>> parse_snapshot({"version": "v1", "weights": '{"nope": 1}'})
    Traceback (most recent call last):
    ...
    ValueError: unknown feature 'nope'
    """
    version = fields.get("version")
    if not isinstance(version, str) or not 0 < len(version) <= 64:
        raise ValueError("no version")
    raw = fields.get("weights")
    doc = json.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(doc, dict):
        raise ValueError("weights are not an object")
    index = {n: i for i, n in enumerate(FEATURES)}
    weights = [0.0] * len(FEATURES)
    intercept = 0.0
    for name, w in doc.items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) \
                or abs(w) > 1e6:
            raise ValueError(f"weight of {name!r} is not a sane number")
        if name == "intercept":
            intercept = float(w)
        elif name in index:
            weights[index[name]] = float(w)
        else:
            raise ValueError(f"unknown feature {name!r}")
    examples = fields.get("examples", 0)
    fallback = fields.get("fallback") or ""
    if not isinstance(fallback, str) or len(fallback) > 128:
        raise ValueError("fallback is not an alert id")
    return ModelSnapshot(version, tuple(weights), intercept,
                         int(examples) if str(examples).isdigit() else 0, fallback)


def _reorder(ranked: list[tuple[str, float]], sc: list[float]) -> list[tuple[str, float]]:
    """Best score first; equal scores keep their order (a stable sort, reversed: the same
    order as sorting by the negated score, without a Python call per comparison key)."""
    order = sorted(range(len(ranked)), key=sc.__getitem__, reverse=True)
    r = ranked
    return [(r[i][0], round(sc[i], 6)) for i in order]


# starting weights: recent items first (the last one most), then co-visitation and
# session-kNN
PRIOR = {"recent": 3.0, "last": 1.0, "covis_last": 1.0, "covis": 0.5, "sknn": 0.3}


class LearnedRanker:
    def __init__(self, lr: float = 0.02, l2: float = 1e-5, margin: float = 1.0,
                 spread: int = 4, prior: dict[str, float] | None = None) -> None:
        """Each outcome learns as negatives the candidates scored within ``margin`` of the
        next item (the ones it has to pass) and ``spread`` others over the list."""
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2)
        for k, v in (PRIOR if prior is None else prior).items():
            self.model._weights[k] = v
        self.margin, self.spread = margin, spread
        self.learned = 0
        self._vec: list[float] | None = None  # the weights in FEATURES order, until learning

    @property
    def version(self) -> str:
        return f"river-logreg-v1+{self.learned}"

    features = staticmethod(features)  # ``features.ranking.features``

    def weights(self) -> tuple[list[float], float]:
        """The weights in ``FEATURES`` order and the intercept (kept until a learn)."""
        vec = self._vec
        if vec is None:
            w = self.model.weights  # a copy
            vec = self._vec = [w.get(name, 0.0) for name in FEATURES]
        return vec, self.model.intercept

    def scores(self, rows: list[tuple[float, ...]]) -> list[float]:
        return scores(rows, *self.weights())

    def rank(self, ranked: list[tuple[str, float]], rows: list[tuple[float, ...]]
             ) -> list[tuple[str, float]]:
        """``ranked`` reordered by learned score (ties keep the heuristic order)."""
        return _reorder(ranked, self.scores(rows))

    @staticmethod
    def reorder(ranked: list[tuple[str, float]], scores: list[float]
                ) -> list[tuple[str, float]]:
        """``ranked`` reordered by ``scores`` (computed elsewhere: ``rows_and_scores``)."""
        return _reorder(ranked, scores)

    def learn_one(self, row: tuple[float, ...], label: bool) -> float:
        """Learn one labelled example (an attributed impression, ``agent.learner``);
        returns its log-loss as predicted before learning (prequential)."""
        x = _named(row)
        p = self.model.predict_proba_one(x).get(True, 0.5)  # type: ignore[no-untyped-call]
        p = min(max(p, 1e-7), 1 - 1e-7)
        self.model.learn_one(x, label)
        self.learned += 1
        self._vec = None
        return -math.log(p if label else 1 - p)

    def snapshot(self, version: str) -> ModelSnapshot:
        w = self.model.weights
        return ModelSnapshot(version, tuple(float(w.get(n, 0.0)) for n in FEATURES),
                             float(self.model.intercept), self.learned)

    def learn(self, feats: list[tuple[float, ...]], skus: list[str], target: str) -> bool:
        """Learn from one outcome; False when the next item was not among the candidates."""
        try:
            hit = skus.index(target)
        except ValueError:
            return False
        # negatives: the candidates the model does not yet put clearly below the next item,
        # and a few spread over the rest (every candidate as a negative scored the same on
        # generated data at 1.2x the cost; only the top ones made the model chase itself)
        sc = self.scores(feats)
        bar = sc[hit] - self.margin
        close = [i for i in range(len(skus)) if i != hit and sc[i] >= bar]
        rest = [i for i in range(len(skus)) if sc[i] < bar]
        others = close + rest[::max(1, len(rest) // self.spread)][:self.spread] \
            if self.spread else close
        learn = self.model.learn_one
        learn(_named(feats[hit]), True)
        for i in others:
            learn(_named(feats[i]), False)
        self.learned += 1
        self._vec = None
        return True
