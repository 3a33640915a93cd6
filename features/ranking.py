"""The learned ranker's features of a candidate (``agent.ranker``), and its linear score:
the Python reference, and the native kernel (``native/src/kernels/ranking.rs``) that
computes the same values to the last bit when built (``rows_and_scores``).

>>> rows = features([("A", 1.0), ("B", 0.5)], {"A": 2.0}, {"covis": {"B": 4.0}}, ("B",), ())
>>> dict(zip(FEATURES, rows[1]))["covis"], dict(zip(FEATURES, rows[1]))["last"]
(1.0, 1.0)
>>> scores(rows, [1.0 if n == "last" else 0.0 for n in FEATURES], -0.5)
[-0.5, 0.5]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import mul

from features.native_ext import ext as _native

SOURCES = ("covis", "trending", "new", "covis_last", "sknn", "popular")
FEATURES = ("h", "h_rank", "interest", "covis", "trending", "new", "n_sources", "recent",
            "last", "recent_x_covis", "new_covis", "cart", "covis_last", "second", "third",
            "pop", "trend", "conv", "sknn", "popular", "n_recent", "covis_abs",
            "covis_last_abs", "sknn_abs")

Row = tuple[float, ...]


def features(ranked: list[tuple[str, float]], interests: dict[str, float],
             lists: dict[str, dict[str, float]], recent: tuple[str, ...],
             cart: tuple[str, ...], facts: list[tuple[float, float, float]] | None = None
             ) -> list[tuple[float, ...]]:
    """One row per candidate, the values of ``FEATURES`` in order; ``facts``: each
    candidate's (popularity, trending, conversion rate), in ``ranked``'s order."""
    top_int = max(interests.values(), default=0.0) or 1.0
    empty: dict[str, float] = {}
    covis, trending, new, last, knn, popular = (lists.get(src, empty) for src in SOURCES)
    tc, tt, tn, tl, tk, tp = ((max(v.values(), default=0.0) or 1.0)
                              for v in (covis, trending, new, last, knn, popular))
    pos = {s: i for i, s in enumerate(recent)}
    if facts is None:
        facts = [(0.0, 0.0, 0.0)] * len(ranked)
    top_pop = max((f[0] for f in facts), default=0.0) or 1.0
    n_recent = min(len(recent), 10) / 10
    out: list[tuple[float, ...]] = []
    for rank, ((sku, h), (pop, trend, conv)) in enumerate(zip(ranked, facts, strict=True)):
        w = interests.get(sku)
        c, t, nw, cl = covis.get(sku), trending.get(sku), new.get(sku), last.get(sku)
        kn, pp = knn.get(sku), popular.get(sku)
        p = pos.get(sku)
        rec = 1.0 / (1 + p) if p is not None else 0.0
        cv = c / tc if c is not None else 0.0
        out.append((
            h, 1.0 / (1 + rank), w / top_int if w is not None else 0.0, cv,
            t / tt if t is not None else 0.0, nw / tn if nw is not None else 0.0,
            float((w is not None) + (c is not None) + (t is not None) + (nw is not None)),
            rec, 1.0 if p == 0 else 0.0, rec * cv, cv if p is None else 0.0,
            1.0 if sku in cart else 0.0, cl / tl if cl is not None else 0.0,
            1.0 if p == 1 else 0.0, 1.0 if p == 2 else 0.0,
            pop / top_pop, min(trend, 10.0) / 10.0, min(conv, 1.0),
            kn / tk if kn is not None else 0.0, pp / tp if pp is not None else 0.0,
            n_recent, c / (c + 2.0) if c is not None else 0.0,
            cl / (cl + 2.0) if cl is not None else 0.0,
            kn / (kn + 2.0) if kn is not None else 0.0))
    return out


def scores(rows: list[Row], weights: list[float] | tuple[float, ...],
           intercept: float) -> list[float]:
    """``intercept + sum(w * x)`` per row (in ``FEATURES`` order)."""
    return [intercept + sum(map(mul, weights, row)) for row in rows]


# a hidden ReLU layer: (units, input weights FEATURES x units row-major, biases, outputs)
DeepLayer = tuple[int, Sequence[float], Sequence[float], Sequence[float]]


def deep_scores(rows: list[Row], linear: list[float], deep: DeepLayer) -> list[float]:
    """``linear`` plus a hidden ReLU layer's output per row (``agent.ranker.Deep``): each
    unit's input summed in feature order from its bias, the positive ones times their
    output weight summed in unit order (the native kernel sums in the same order).

    >>> deep_scores([(1.0,) * len(FEATURES)], [0.5], (1, (0.5,) * len(FEATURES), (-1.0,), (2.0,)))
    [22.5]
    """
    hidden, w_in, bias, out = deep
    if len(w_in) != len(FEATURES) * hidden or len(bias) != hidden or len(out) != hidden:
        raise ValueError("deep layer of another shape")
    res = []
    for row, lin in zip(rows, linear, strict=True):
        total = 0.0
        for j in range(hidden):
            a = bias[j]
            for i, x in enumerate(row):
                a += x * w_in[i * hidden + j]
            if a > 0.0:
                total += a * out[j]
        res.append(lin + total)
    return res


def logreg_sgd(weights: Sequence[float], intercept: float, rows: list[Row], labels: list[bool],
               lr: float, l2: float, intercept_lr: float = 0.01, clip: float = 1e12
               ) -> tuple[list[float], float]:
    """Plain SGD of a logistic regression, one example after the other, as River's
    ``linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2)`` learns it with
    ``learn_one`` (its default constant intercept rate and gradient clip): a zero feature
    is absent (its weight neither read nor decayed), the log loss's gradient ``g`` moves the
    intercept by ``intercept_lr * g`` and each present weight by ``lr * (g * x + l2 * w)``.
    The dot product is summed in ``FEATURES`` order (River sums in its dict's order: the
    same up to rounding). Returns the new weights and intercept; the native kernel
    (``native_learn``) computes the same, to the last bit.

    >>> w, b = logreg_sgd([0.0, 1.0], 0.0, [(1.0, 0.0)], [True], lr=0.1, l2=0.0)
    >>> [round(v, 6) for v in w], round(b, 6)
    ([0.05, 1.0], 0.005)
    """
    w = list(weights)
    b = intercept
    for row, label in zip(rows, labels, strict=True):
        dot = 0.0
        for j, x in enumerate(row):
            if x != 0.0:
                dot += w[j] * x
        y = 1.0 if label else -1.0
        z = (dot + b) * y
        if z > 18.0:
            g = math.exp(-z) * -y
        elif z < -18.0:
            g = -y
        else:
            g = -y / (math.exp(z) + 1.0)
        g = min(max(g, -clip), clip)
        b -= intercept_lr * g
        for j, x in enumerate(row):
            if x != 0.0:
                w[j] -= lr * (g * x + l2 * w[j])
    return w, b


def native_learn(weights: Sequence[float], intercept: float, rows: list[Row],
                 labels: list[bool], lr: float, l2: float, intercept_lr: float = 0.01,
                 native: bool = True) -> tuple[list[float], float]:
    """``logreg_sgd``, natively when the extension is built (and asked for)."""
    if native and _native is not None:
        try:
            return _native.logreg_sgd(list(weights), intercept, rows, labels, lr, l2,
                                      intercept_lr)
        except (ValueError, TypeError):
            pass  # rows of another width: the reference learns
    return logreg_sgd(weights, intercept, rows, labels, lr, l2, intercept_lr)


def rows_and_scores(ranked: list[tuple[str, float]], interests: dict[str, float],
                    lists: dict[str, dict[str, float]], recent: tuple[str, ...],
                    cart: tuple[str, ...], facts: list[tuple[float, float, float]] | None,
                    weights: list[float] | tuple[float, ...] | None = None,
                    intercept: float = 0.0, native: bool = True,
                    deep: DeepLayer | None = None) -> tuple[list[Row], list[float] | None]:
    """``features`` and, with ``weights``, their ``scores`` (plus ``deep``'s, when given):
    natively in one call when the extension is built (and asked for), else in Python; the
    same values either way."""
    if native and _native is not None:
        try:
            return _native.ranker_rows(
                ranked, interests, lists, recent, cart, facts,
                list(weights) if weights is not None else None, intercept, deep)
        except (ValueError, TypeError):
            pass  # an input of another shape: the reference decides
    rows = features(ranked, interests, lists, recent, cart, facts)
    if weights is None:
        return rows, None
    sc = scores(rows, weights, intercept)
    return rows, (deep_scores(rows, sc, deep) if deep is not None else sc)
