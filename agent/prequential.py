"""Prequential (test-then-train) next-item scores: for each event of a key that has an
earlier one, the list a recommender served just before it is judged against the event's
item, then the event is learned.

HitRate@K (= Recall@K with one target): the share of targets in the top K; MRR@K: the mean
of 1/rank (0 beyond K); coverage@K: the share of distinct items that reached some top K;
``seen_share``: the share of targets the key had interacted with before.

>>> b = Scoreboard((1, 3))
>>> b.add("feed", ["A", "B", "C"], "B")
>>> b.add("feed", ["A", "B", "C"], "Z")
>>> r = b.result(items=4)["feed"]
>>> r["hr@1"], r["hr@3"], r["mrr@3"], r["coverage@3"]
(0.0, 0.5, 0.25, 0.75)
"""

from __future__ import annotations

from collections.abc import Sequence


class Scoreboard:
    def __init__(self, ks: Sequence[int] = (10, 20)) -> None:
        self.ks = tuple(sorted(set(ks)))
        self.n: dict[str, int] = {}
        self.hits: dict[str, list[int]] = {}
        self.rr: dict[str, list[float]] = {}
        self.shown: dict[str, list[set[str]]] = {}
        self.targets = 0
        self.seen_targets = 0

    def target(self, seen_before: bool) -> None:
        """Count one evaluated event (once, whatever the number of recommenders)."""
        self.targets += 1
        self.seen_targets += seen_before

    def add(self, name: str, served: Sequence[str], target: str) -> None:
        if name not in self.n:
            self.n[name] = 0
            self.hits[name] = [0] * len(self.ks)
            self.rr[name] = [0.0] * len(self.ks)
            self.shown[name] = [set() for _ in self.ks]
        self.n[name] += 1
        try:
            rank = list(served[:self.ks[-1]]).index(target) + 1
        except ValueError:
            rank = 0
        for i, k in enumerate(self.ks):
            self.shown[name][i].update(served[:k])
            if 0 < rank <= k:
                self.hits[name][i] += 1
                self.rr[name][i] += 1.0 / rank

    def result(self, items: int) -> dict[str, dict[str, float]]:
        """Per recommender: hr@K, mrr@K, coverage@K (over ``items`` distinct items)."""
        out: dict[str, dict[str, float]] = {}
        for name, n in self.n.items():
            r: dict[str, float] = {"evaluated": n}
            for i, k in enumerate(self.ks):
                r[f"hr@{k}"] = round(self.hits[name][i] / n, 4) if n else 0.0
                r[f"mrr@{k}"] = round(self.rr[name][i] / n, 4) if n else 0.0
                r[f"coverage@{k}"] = round(len(self.shown[name][i]) / items, 4) if items else 0.0
            out[name] = r
        return out

    @property
    def seen_share(self) -> float:
        return round(self.seen_targets / self.targets, 4) if self.targets else 0.0
