"""Simple next-item recommenders that ``flows evaluate`` scores beside Bespoke's own feed,
on exactly the same events: the yardsticks a learned or hand-built feed has to beat.

Each one sees the events in event time (``learn``) and, before each event of a key that
has an earlier one, is asked for its top K for that key (``recommend``; ``history`` is the
key's items so far, oldest first). All are deterministic (ties by sku).

>>> pop = MostPopular()
>>> for s in "ABBCCC":
...     pop.learn("k", s, 0)
>>> pop.recommend("k", ["A"], 2)
['C', 'B']
>>> knn = SessionKnn()
>>> for key, items in (("s1", "AB"), ("s2", "AC"), ("s3", "XY")):
...     for s in items:
...         knn.learn(key, s, 0)
>>> knn.recommend("s4", ["A"], 3)
['A', 'B', 'C']
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from features.retrieval import kernels


class Recommender(Protocol):
    name: str

    def learn(self, key: str, sku: str, ts: int) -> None: ...

    def recommend(self, key: str, history: Sequence[str], k: int) -> list[str]: ...


class _Top:
    """The ``m`` best items by a score that only grows (counts, forward-decayed weights):
    exact, without sorting every item on each read."""

    def __init__(self, m: int = 200) -> None:
        self.m = m
        self.score: dict[str, float] = {}
        self.top: list[str] = []
        self.members: set[str] = set()

    def add(self, sku: str, amount: float) -> None:
        score = self.score
        s = score.get(sku, 0.0) + amount
        score[sku] = s
        top = self.top
        if sku in self.members:
            i = top.index(sku)
        elif len(top) < self.m:
            top.append(sku)
            self.members.add(sku)
            i = len(top) - 1
        elif (-s, sku) < (-score[top[-1]], top[-1]):
            self.members.discard(top[-1])
            top[-1] = sku
            self.members.add(sku)
            i = len(top) - 1
        else:
            return
        # the score only grew: move it up past the ones it now beats
        while i and (-s, sku) < (-score[top[i - 1]], top[i - 1]):
            top[i] = top[i - 1]
            i -= 1
        top[i] = sku

    def scale(self, f: float) -> None:
        for k in self.score:
            self.score[k] *= f

    def best(self, k: int, skip: set[str] | None = None) -> list[str]:
        if not skip:
            return self.top[:k]
        return [s for s in self.top if s not in skip][:k]


class MostPopular:
    """Items with the most behaviour events so far."""

    name = "most_popular"

    def __init__(self) -> None:
        self.top = _Top()

    def learn(self, key: str, sku: str, ts: int) -> None:
        self.top.add(sku, 1.0)

    def recommend(self, key: str, history: Sequence[str], k: int) -> list[str]:
        return self.top.best(k)


class DecayedPopular:
    """Popularity with each event's weight halving every ``half_life_ms`` of event time
    (forward decay: weights grow with time, rescaled now and then)."""

    name = "decayed_popular"

    def __init__(self, half_life_ms: float = 86_400_000.0) -> None:
        self.hl = half_life_ms
        self.top = _Top()
        self.landmark: int | None = None

    def learn(self, key: str, sku: str, ts: int) -> None:
        if self.landmark is None:
            self.landmark = ts
        e = (ts - self.landmark) / self.hl
        if e > 60:  # keep weights finite: move the landmark, scale what was counted
            self.top.scale(2.0 ** -e)
            self.landmark, e = ts, 0.0
        self.top.add(sku, 2.0 ** max(e, -60.0))

    def recommend(self, key: str, history: Sequence[str], k: int) -> list[str]:
        return self.top.best(k)


class LastItemCovis:
    """Items seen right before or after the key's last item in other keys' sequences
    (counts), then the most popular."""

    name = "last_item_covis"

    def __init__(self) -> None:
        self.co: dict[str, dict[str, int]] = {}
        self.last: dict[str, str] = {}
        self.pop = MostPopular()

    def learn(self, key: str, sku: str, ts: int) -> None:
        prev = self.last.get(key)
        if prev is not None and prev != sku:
            for a, b in ((prev, sku), (sku, prev)):
                row = self.co.setdefault(a, {})
                row[b] = row.get(b, 0) + 1
        self.last[key] = sku
        self.pop.learn(key, sku, ts)

    def recommend(self, key: str, history: Sequence[str], k: int) -> list[str]:
        row = self.co.get(history[-1], {}) if history else {}
        out = heapq.nsmallest(k, row, key=lambda s: (-row[s], s))
        if len(out) < k:
            have = set(out)
            out += self.pop.top.best(k - len(out), have)
        return out


class RecentThenCovis(LastItemCovis):
    """The key's own items, most recent first, then ``LastItemCovis`` (a strong rule on
    session data, where many next events revisit an item)."""

    name = "recent_then_covis"

    def recommend(self, key: str, history: Sequence[str], k: int) -> list[str]:
        out: list[str] = []
        seen: set[str] = set()
        for s in reversed(history):
            if s not in seen:
                seen.add(s)
                out.append(s)
                if len(out) == k:
                    return out
        for s in super().recommend(key, history, k + len(out)):
            if s not in seen:
                seen.add(s)
                out.append(s)
                if len(out) == k:
                    break
        return out


class SessionKnn:
    """V-SKNN: past keys (sessions) that share items with the current one, each weighted by
    where the shared items sit in the current session (recent ones count more); an item's
    score is the summed similarity of the neighbours holding it."""

    name = "session_knn"

    def __init__(self, neighbours: int = 50, per_item: int = 50, window: int = 10,
                 session_items: int = 20, native: bool = True) -> None:
        self.k_nb, self.window = neighbours, window
        self.by_item: dict[str, deque[str]] = {}  # item -> recent keys that hold it
        self.items: dict[str, deque[str]] = {}  # key -> its distinct items, recent last
        self.per_item, self.session_items = per_item, session_items
        # the live source's kernels (``features.retrieval``) compute the same lists: used
        # while no id holds a comma (their rows are comma-joined)
        kern = kernels(native)
        self._kernels = kern if kern.native else None

    def learn(self, key: str, sku: str, ts: int) -> None:
        if self._kernels is not None and ("," in key or "," in sku):
            self._kernels = None
        _to_front(self.items, key, sku, self.session_items)
        _to_front(self.by_item, sku, key, self.per_item)

    def recommend(self, key: str, history: Sequence[str], k: int) -> list[str]:
        current: list[str] = []
        for s in reversed(history):  # the last distinct items, newest first
            if s not in current:
                current.append(s)
                if len(current) == self.window:
                    break
        kern = self._kernels
        if kern is not None:
            join, by_item, items = ",".join, self.by_item, self.items
            near = kern.similar_keys(key, current, [join(by_item.get(s, ())) for s in current],
                                     self.k_nb, self.window)
            return [s for s, _ in kern.session_knn(near, [join(items[o]) for o, _ in near], k)]
        n = len(current)
        sim: dict[str, float] = {}
        for pos, s in enumerate(current):
            w = (n - pos) / n  # newest 1.0, linearly less for older items
            for other in self.by_item.get(s, ()):
                if other != key:
                    sim[other] = sim.get(other, 0.0) + w
        # (-similarity, key) tuples compare in C: no Python call per candidate
        nbs = heapq.nsmallest(self.k_nb, [(-w, o) for o, w in sim.items()])
        score: dict[str, float] = {}
        get = score.get
        items = self.items
        for neg_w, o in nbs:
            for s in items[o]:
                score[s] = get(s, 0.0) - neg_w
        return [s for _, s in heapq.nsmallest(k, [(-v, s) for s, v in score.items()])]


class SequentialRules:
    """SR (sequential rules): each item a key viewed before another, at most ``steps``
    events earlier, makes the rule "after a comes b" stronger by 1/distance; the key's last
    item's rules, strongest first, then the most popular. Directional, unlike
    ``LastItemCovis``: one of the strongest simple methods on session data."""

    name = "sequential_rules"

    def __init__(self, steps: int = 10) -> None:
        self.steps = steps
        self.rules: dict[str, dict[str, float]] = {}
        self.recent: dict[str, deque[str]] = {}  # key -> its last ``steps`` events
        self.pop = MostPopular()

    def learn(self, key: str, sku: str, ts: int) -> None:
        prev = self.recent.get(key)
        if prev is None:
            prev = self.recent[key] = deque(maxlen=self.steps)
        rules = self.rules
        for dist, a in enumerate(reversed(prev), 1):
            if a != sku:
                row = rules.get(a)
                if row is None:
                    row = rules[a] = {}
                row[sku] = row.get(sku, 0.0) + 1.0 / dist
        prev.append(sku)
        self.pop.learn(key, sku, ts)

    def recommend(self, key: str, history: Sequence[str], k: int) -> list[str]:
        row = self.rules.get(history[-1], {}) if history else {}
        out = [s for _, s in heapq.nsmallest(k, [(-w, s) for s, w in row.items()])]
        if len(out) < k:
            out += self.pop.top.best(k - len(out), set(out))
        return out


def _to_front(recent: dict[str, deque[str]], key: str, value: str, maxlen: int) -> None:
    """``value`` as the newest of ``recent[key]`` (distinct values, at most ``maxlen``)."""
    d = recent.get(key)
    if d is None:
        d = recent[key] = deque(maxlen=maxlen)
    elif value in d:
        d.remove(value)
    d.append(value)


def all_baselines() -> list[Recommender]:
    return [MostPopular(), DecayedPopular(), LastItemCovis(), RecentThenCovis(), SessionKnn(),
            SequentialRules()]
