"""A learned ranker: online logistic regression (River) over per-candidate features, the
probability that a candidate is the user's next item.

Features of a candidate (``features``): the heuristic score and rank, each retrieval
source's score scaled to its best (interest, co-visitation, trending, new arrivals), the number of
sources that found it, where it sits among the user's recent items, whether it is the last
one or in the cart, and a few crosses. Scoring is a dot product over the model's weights
(``scores``), not one ``predict_proba_one`` per candidate; rows are tuples in the order of
``FEATURES`` (dicts only for the few rows learned). ``learn`` takes the candidates of
a served decision and the item that came next: the next item is the positive, the ``hard``
others, spread over the list, the negatives (deterministic). Until it has learned, every score ties
and the heuristic order stands (the named fallback).

>>> r = LearnedRanker()
>>> cands = [("A", 1.0), ("B", 0.5)]
>>> feats = r.features(cands, {"A": 1.0}, {}, ("B",), ())
>>> [s for s, _ in r.rank(cands, feats)]   # nothing learned: the heuristic order
['A', 'B']
>>> for _ in range(30):
...     _ = r.learn(feats, ["A", "B"], "B")
>>> [s for s, _ in r.rank(cands, feats)]   # B (the last item seen) comes next, learned
['B', 'A']
"""

from __future__ import annotations

from operator import mul

from river import linear_model, optim

SOURCES = ("covis", "trending", "new", "covis_last")
FEATURES = ("h", "h_rank", "interest", "covis", "trending", "new", "n_sources", "recent",
            "last", "recent_x_covis", "new_covis", "cart", "covis_last", "second", "third")


def _named(row: tuple[float, ...]) -> dict[str, float]:
    """A row as River takes it (the zero features left out, as sparse input)."""
    return {k: v for k, v in zip(FEATURES, row, strict=True) if v}


class LearnedRanker:
    def __init__(self, lr: float = 0.05, l2: float = 1e-5, negatives: int = 8) -> None:
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2)
        self.negatives = negatives
        self.learned = 0

    @property
    def version(self) -> str:
        return f"river-logreg-v1+{self.learned}"

    def features(self, ranked: list[tuple[str, float]], interests: dict[str, float],
                 lists: dict[str, dict[str, float]], recent: tuple[str, ...],
                 cart: tuple[str, ...]) -> list[tuple[float, ...]]:
        """One row per candidate, the values of ``FEATURES`` in order."""
        top_int = max(interests.values(), default=0.0) or 1.0
        empty: dict[str, float] = {}
        covis, trending, new, last = (lists.get(src, empty) for src in SOURCES)
        tc, tt, tn, tl = ((max(v.values(), default=0.0) or 1.0)
                          for v in (covis, trending, new, last))
        pos = {s: i for i, s in enumerate(recent)}
        out: list[tuple[float, ...]] = []
        for rank, (sku, h) in enumerate(ranked):
            w = interests.get(sku)
            c, t, nw, cl = covis.get(sku), trending.get(sku), new.get(sku), last.get(sku)
            p = pos.get(sku)
            rec = 1.0 / (1 + p) if p is not None else 0.0
            cv = c / tc if c is not None else 0.0
            out.append((
                h, 1.0 / (1 + rank), w / top_int if w is not None else 0.0, cv,
                t / tt if t is not None else 0.0, nw / tn if nw is not None else 0.0,
                float((w is not None) + (c is not None) + (t is not None) + (nw is not None)),
                rec, 1.0 if p == 0 else 0.0, rec * cv, cv if p is None else 0.0,
                1.0 if sku in cart else 0.0, cl / tl if cl is not None else 0.0,
                1.0 if p == 1 else 0.0, 1.0 if p == 2 else 0.0))
        return out

    def scores(self, rows: list[tuple[float, ...]]) -> list[float]:
        w = self.model.weights
        vec = [w.get(name, 0.0) for name in FEATURES]
        b = self.model.intercept
        return [b + sum(map(mul, vec, row)) for row in rows]

    def rank(self, ranked: list[tuple[str, float]], rows: list[tuple[float, ...]]
             ) -> list[tuple[str, float]]:
        """``ranked`` reordered by learned score (ties keep the heuristic order)."""
        sc = self.scores(rows)
        order = sorted(range(len(ranked)), key=lambda i: -sc[i])
        return [(ranked[i][0], round(sc[i], 6)) for i in order]

    def learn(self, feats: list[tuple[float, ...]], skus: list[str], target: str) -> bool:
        """Learn from one outcome; False when the next item was not among the candidates."""
        try:
            hit = skus.index(target)
        except ValueError:
            return False
        # negatives spread over the list (every step-th other candidate): only the top ones
        # (hard negatives) made the model chase its own ranking
        others = [i for i in range(len(skus)) if i != hit]
        step = max(1, len(others) // self.negatives)
        self.model.learn_one(_named(feats[hit]), True)
        for i in others[::step][:self.negatives]:
            self.model.learn_one(_named(feats[i]), False)
        self.learned += 1
        return True
