"""A learned ranker: online logistic regression (River) over per-candidate features, plus
a small non-linear part, the probability that a candidate is the user's next item.

Features of a candidate (``features``): the heuristic score and rank, each retrieval
source's score scaled to its best (interest, co-visitation, trending, new arrivals, the last
item's co-visitation, session-kNN, the popular list), the number of
sources that found it, where it sits among the user's recent items, whether it is the last
one or in the cart, a few crosses, and the item's popularity (scaled to the best candidate's),
trend and conversion rate. Scoring is a dot product over the model's weights
(``scores``), not one ``predict_proba_one`` per candidate; rows are tuples in the order of
``FEATURES``. The linear part is River's ``LogisticRegression`` with plain SGD; its
``learn_one`` steps are computed by ``features.ranking.logreg_sgd`` (natively when built) and
written back into the River model. ``learn`` takes the candidates of
a served decision and the item that came next: the next item is the positive; the negatives
are the candidates scored close to or above it, and a few others (tuned on generated data:
8 negatives spread over the list gave HR@10 0.445, these 0.470, at a smaller learning rate).

The model starts from a prior (``PRIOR``: the user's recent items first, then the last item's
co-visitation neighbours, the rule that is hard to beat on session data), so the first
decisions of a replay are not random; learning moves it from there.

The deep part (``Deep``: one layer of ``HIDDEN`` ReLU units over the same row, its output
added to the linear score) learns, by plain SGD on the log-loss of the full score, how features
combine, which a weighted sum cannot say (a rule of the form "this or that, not both" is
learned; ``tests/agent/test_ranker.py``). Its output
weights start at zero, so it changes nothing until it learns. Learning is a few numpy
matrix products per outcome (River has no online network that takes a candidate list in one
call); scoring runs in the native ranker kernel (``rows_and_scores(..., deep=)``); snapshots
carry it (``Deep.encode``, the model view's ``deep`` field), so every
scorer ranks with the same function. On generated data and the OTTO sample it lifted
HR@10 by 1.4-4.2% and MRR@10 by 1.5-7.0% over the linear model alone (``docs/performance.md``).

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

import numpy as np
from river import linear_model, optim

from features.definitions import ITEM_POPULARITY
from features.ranking import FEATURES, deep_scores, features, native_learn, scores

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


MAX_HIDDEN = 256
PAST_WIDTHS = (20,)  # feature rows of deep parts published by earlier versions
_FEATURE_SET = frozenset(FEATURES)


def _sgd_model(m: linear_model.LogisticRegression) -> bool:
    """Whether ``features.ranking.logreg_sgd`` computes ``m``'s ``learn_one``: plain SGD at
    a constant rate, a constant intercept rate, L2 alone, every weight one of ``FEATURES``."""
    return (type(m.optimizer) is optim.SGD
            and isinstance(m.optimizer.lr, optim.schedulers.Constant)
            and isinstance(m.intercept_lr, optim.schedulers.Constant)
            and not m.l1 and m.clip_gradient == 1e12
            and type(m.loss) is optim.losses.Log and m.loss.weight_pos == 1.0
            and m.loss.weight_neg == 1.0 and not set(m._weights) - _FEATURE_SET)


class Deep(NamedTuple):
    """The ranker's non-linear part: one hidden layer of ReLU units over the same feature
    row, its output added to the linear score (``w_in``: ``len(FEATURES)`` x ``hidden``,
    row-major; ``bias``, ``out``: one per unit).

    >>> d = Deep(1, (1.0,) + (0.0,) * (len(FEATURES) - 1), (-0.5,), (2.0,))
    >>> d.add([(1.0,) + (0.0,) * (len(FEATURES) - 1)] * 2, [0.0, 1.0])
    [1.0, 2.0]
    """

    hidden: int
    w_in: tuple[float, ...]
    bias: tuple[float, ...]
    out: tuple[float, ...]

    def add(self, rows: list[tuple[float, ...]], linear: list[float]) -> list[float]:
        """``linear`` scores of ``rows`` plus this part's output (``deep_scores``: what a
        scorer's ``rows_and_scores(..., deep=snapshot.deep)`` computes natively)."""
        return deep_scores(rows, linear, self)

    def encode(self) -> str:
        return json.dumps({"hidden": self.hidden, "w_in": list(self.w_in),
                           "bias": list(self.bias), "out": list(self.out)})


def parse_deep(raw: Any) -> Deep | None:
    """A snapshot's deep part from its JSON ('' or absent: none); ValueError when its shape
    or a value is off."""
    if raw in (None, ""):
        return None
    doc = json.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(doc, dict):
        raise ValueError("deep part is not an object")
    h = doc.get("hidden")
    if isinstance(h, bool) or not isinstance(h, int) or not 0 < h <= MAX_HIDDEN:
        raise ValueError("deep part: hidden units out of range")
    w_in = doc.get("w_in")
    if isinstance(w_in, list) and len(w_in) in tuple(w * h for w in PAST_WIDTHS):
        # published before features were appended: theirs weigh nothing yet
        doc = {**doc, "w_in": w_in + [0.0] * ((len(FEATURES) * h) - len(w_in))}
    parts = []
    for name, n in (("w_in", len(FEATURES) * h), ("bias", h), ("out", h)):
        vals = doc.get(name)
        if not isinstance(vals, list) or len(vals) != n or not all(
                not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
                and abs(v) <= 1e6 for v in vals):
            raise ValueError(f"deep part: {name} is not {n} sane numbers")
        parts.append(tuple(float(v) for v in vals))
    return Deep(h, *parts)


class ModelSnapshot(NamedTuple):
    """A published version of the ranker: what a scorer needs (no River object)."""

    version: str
    weights: tuple[float, ...]  # in FEATURES order
    intercept: float
    examples: int
    fallback: str = ""  # a drift alert's id: the version must not rank (agent.drift)
    deep: Deep | None = None  # the non-linear part (None: a linear model)

    def scores(self, rows: list[tuple[float, ...]]) -> list[float]:
        sc = scores(rows, self.weights, self.intercept)
        return self.deep.add(rows, sc) if self.deep is not None else sc

    def named_weights(self) -> dict[str, float]:
        """The weights by feature (the non-zero ones) and ``intercept``."""
        named = {n: w for n, w in zip(FEATURES, self.weights, strict=True) if w}
        return {**named, "intercept": self.intercept}

    def fields(self) -> dict[str, Any]:
        """The snapshot as the online store keeps it (``features.definitions.MODEL_VIEW``)."""
        return {"version": self.version, "examples": self.examples,
                "weights": json.dumps(self.named_weights(), sort_keys=True),
                "fallback": self.fallback,
                "deep": self.deep.encode() if self.deep is not None else ""}


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
                         int(examples) if str(examples).isdigit() else 0, fallback,
                         parse_deep(fields.get("deep")))


def fit_width(row: tuple[float, ...]) -> tuple[float, ...]:
    """A feature row served by another version, as this one reads it: features are only
    ever appended to ``FEATURES``, so an older (shorter) row gets zeros for the newer ones
    and a newer (longer) row loses those this version does not know (an impression served
    before an upgrade and settled after it).

    >>> len(fit_width((1.0,) * 20)) == len(FEATURES), fit_width((1.0,) * 20)[19:21]
    (True, (1.0, 0.0))
    """
    n = len(FEATURES)
    return row if len(row) == n else (tuple(row[:n]) + (0.0,) * (n - len(row)))


def _reorder(ranked: list[tuple[str, float]], sc: list[float]) -> list[tuple[str, float]]:
    """Best score first; equal scores keep their order (a stable sort, reversed: the same
    order as sorting by the negated score, without a Python call per comparison key). The
    scores stay as computed: what is sent rounds the few it sends (``agent.feed``), where
    rounding all 50 here cost more than scoring them."""
    order = sorted(range(len(ranked)), key=sc.__getitem__, reverse=True)
    r = ranked
    return [(r[i][0], sc[i]) for i in order]


# starting weights: recent items first (the last one most), then co-visitation and
# session-kNN
PRIOR = {"recent": 3.0, "last": 1.0, "covis_last": 1.0, "covis": 0.5, "sknn": 0.3}
# the deep part (tuned on generated data and the OTTO sample: 32 units at 0.03 over 16 at
# 0.01, 64 at 0.03, 32 at 0.1)
HIDDEN, DEEP_LR = 32, 0.03


class LearnedRanker:
    def __init__(self, lr: float = 0.02, l2: float = 1e-5, margin: float = 1.0,
                 spread: int = 4, prior: dict[str, float] | None = None,
                 hidden: int = HIDDEN, deep_lr: float = DEEP_LR, seed: int = 0,
                 native: bool = True) -> None:
        """Each outcome learns as negatives the candidates scored within ``margin`` of the
        next item (the ones it has to pass) and ``spread`` others over the list.
        ``hidden``: ReLU units of the deep part (0: a linear model alone), learning at
        ``deep_lr``, started from ``seed`` (the same seed, the same model). ``native``: the
        linear part's SGD steps run in the native kernel when it is built (the same bits as
        without it; ``_learn_linear``)."""
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2)
        self.native = native
        for k, v in (PRIOR if prior is None else prior).items():
            self.model._weights[k] = v
        # whether logreg_sgd computes this model's learn_one (the weights' names are the
        # prior's and FEATURES: fixed from here)
        self._sgd = _sgd_model(self.model)
        self.margin, self.spread = margin, spread
        self.learned = 0
        self._vec: list[float] | None = None  # the weights in FEATURES order, until learning
        self._deep: Deep | None = None  # the deep part as a tuple, until learning
        self.hidden, self.deep_lr = hidden, deep_lr
        rng = np.random.default_rng(seed)
        # random input weights, output weights zero: the deep part adds nothing until it
        # learns (the prior ranks the first decisions)
        self.w_in = rng.normal(0.0, 0.3, (len(FEATURES), hidden))
        self.bias = np.zeros(hidden)
        self.out = np.zeros(hidden)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("native", True)
        if "_sgd" not in state:  # a learner snapshot from before the native SGD
            self._sgd = _sgd_model(self.model)
        if "hidden" not in state:  # a learner snapshot from before the deep part: linear
            self.hidden, self.deep_lr, self._deep = 0, DEEP_LR, None
            self.w_in = np.zeros((len(FEATURES), 0))
            self.bias, self.out = np.zeros(0), np.zeros(0)
        missing = len(FEATURES) - self.w_in.shape[0]
        if missing > 0:  # from before features were appended: theirs weigh nothing yet
            self.w_in = np.vstack([self.w_in, np.zeros((missing, self.w_in.shape[1]))])
            self._vec, self._deep = None, None

    @property
    def version(self) -> str:
        return f"river-logreg-v1+{self.learned}" if not self.hidden else \
            f"river-logreg+relu{self.hidden}-v2+{self.learned}"

    features = staticmethod(features)  # ``features.ranking.features``

    def weights(self) -> tuple[list[float], float]:
        """The weights in ``FEATURES`` order and the intercept (kept until a learn): the
        linear part (``add_deep`` adds the rest)."""
        vec = self._vec
        if vec is None:
            w = self.model.weights  # a copy
            vec = self._vec = [w.get(name, 0.0) for name in FEATURES]
        return vec, self.model.intercept

    def deep(self) -> Deep | None:
        """The deep part as a scorer takes it (``rows_and_scores(..., deep=)``; kept until
        a learn), None for a linear model."""
        if not self.hidden:
            return None
        d = self._deep
        if d is None:
            d = self._deep = Deep(self.hidden, tuple(self.w_in.ravel().tolist()),
                                  tuple(self.bias.tolist()), tuple(self.out.tolist()))
        return d

    def add_deep(self, rows: list[tuple[float, ...]], linear: list[float]) -> list[float]:
        """The full scores of ``rows`` from their linear ones (``weights``)."""
        if not self.hidden or not rows:
            return linear
        z = np.maximum(np.asarray(rows, dtype=np.float64) @ self.w_in + self.bias, 0.0)
        total: list[float] = (np.asarray(linear, dtype=np.float64) + z @ self.out).tolist()
        return total

    def scores(self, rows: list[tuple[float, ...]]) -> list[float]:
        return self.add_deep(rows, scores(rows, *self.weights()))

    def rank(self, ranked: list[tuple[str, float]], rows: list[tuple[float, ...]]
             ) -> list[tuple[str, float]]:
        """``ranked`` reordered by learned score (ties keep the heuristic order)."""
        return _reorder(ranked, self.scores(rows))

    @staticmethod
    def reorder(ranked: list[tuple[str, float]], scores: list[float]
                ) -> list[tuple[str, float]]:
        """``ranked`` reordered by ``scores`` (computed elsewhere: ``rows_and_scores``)."""
        return _reorder(ranked, scores)

    def _learn_deep(self, rows: list[tuple[float, ...]], totals: list[float],
                    labels: list[float]) -> None:
        """One SGD step of the deep part on the log-loss of the full scores ``totals``:
        it learns what the linear part does not explain."""
        if not self.hidden:
            return
        x = np.asarray(rows, dtype=np.float64)
        a = x @ self.w_in + self.bias
        g = 1.0 / (1.0 + np.exp(-np.asarray(totals))) - np.asarray(labels)
        gz = np.outer(g, self.out) * (a > 0)
        lr = self.deep_lr
        self.out -= lr * (g @ np.maximum(a, 0.0))
        self.w_in -= lr * (x.T @ gz)
        self.bias -= lr * gz.sum(axis=0)
        self._deep = None

    def _learn_linear(self, rows: list[tuple[float, ...]], labels: list[bool]) -> None:
        """River's ``learn_one`` of each row in turn. For the plain-SGD model this ranker
        builds, the steps are computed by ``features.ranking.logreg_sgd`` (natively when the
        kernel is built and ``native`` is on, to the same bits as in Python; River's own
        update sums the dot product in its dict's order, so it can differ in the last bits)
        and written back into the River model; any other model learns through River."""
        m = self.model
        opt = m.optimizer
        if self._sgd:
            vec, b = self.weights()
            w, b = native_learn(vec, b, rows, labels, opt.learning_rate, m.l2,
                                m.intercept_lr.learning_rate, native=self.native)
            weights = m._weights
            for name, old, new in zip(FEATURES, vec, w, strict=True):
                if new != old or name in weights:
                    weights[name] = new
            m.intercept = b
            opt.n_iterations += len(rows)
            return
        for row, label in zip(rows, labels, strict=True):
            m.learn_one(_named(row), label)

    def learn_one(self, row: tuple[float, ...], label: bool) -> float:
        """Learn one labelled example (an attributed impression, ``agent.learner``);
        returns its log-loss as predicted before learning (prequential)."""
        (total,) = self.scores([row])
        p = 1.0 / (1.0 + math.exp(-min(max(total, -30.0), 30.0)))
        p = min(max(p, 1e-7), 1 - 1e-7)
        self._learn_deep([row], [total], [float(label)])
        self._learn_linear([row], [label])
        self.learned += 1
        self._vec = None
        return -math.log(p if label else 1 - p)

    def snapshot(self, version: str) -> ModelSnapshot:
        w = self.model.weights
        return ModelSnapshot(version, tuple(float(w.get(n, 0.0)) for n in FEATURES),
                             float(self.model.intercept), self.learned, deep=self.deep())

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
        self._learn_deep([feats[hit]] + [feats[i] for i in others],
                         [sc[hit]] + [sc[i] for i in others], [1.0] + [0.0] * len(others))
        self._learn_linear([feats[hit]] + [feats[i] for i in others],
                           [True] + [False] * len(others))
        self.learned += 1
        self._vec = None
        return True
