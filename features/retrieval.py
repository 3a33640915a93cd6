"""Candidate retrieval arithmetic of the decision agent, as pure functions over store rows.

- ``neighbours``: co-visitation neighbours of a user's recent items;
- ``merged_lists``: per-category lists (trending, new arrivals) merged, first category first;
- ``session_knn``: session-kNN (V-SKNN) over the keys that share items with the user's trail;
- ``merge``: the sources' candidates merged into one ranked list.

These are the reference implementations. ``kernels(native=True)`` returns the same
functions backed by ``bespoke_native`` (Rust) when it is built: same arithmetic in the same
order, equal results to the last bit (``tests/features/test_retrieval.py`` compares them on random
inputs); an input the native code would read differently from Python's ``float()`` makes it
run the reference instead.

>>> merge([("A", 4.0), ("B", 2.0)], {"covis": [("B", 1.0), ("C", 0.5)]}, set(), 10)
([('B', 1.1), ('A', 1.0), ('C', 0.3)], {'B': 'interest', 'A': 'interest', 'C': 'covis'})
>>> neighbours(("A",), (("B:2.0000,A:1.0000", "C:1.0000"),), 5)
(('B', 2.0), ('C', 2.0))
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import NamedTuple

from features.decay import strongest
from features.native_ext import ext as _native

WEIGHTS = {"interest": 1.0, "covis": 0.6, "covis_last": 0.3, "trending": 0.4,
           "new": 0.25, "sknn": 0.05, "popular": 0.01}  # by source

Scored = tuple[tuple[str, float], ...]


def parse_weights(encoded: str) -> dict[str, float]:
    """'A:0.5,B:1.0' → {'A': 0.5, 'B': 1.0}"""
    out = {}
    for part in filter(None, encoded.split(",")):
        key, _, w = part.rpartition(":")
        out[key] = float(w)
    return out


def neighbours(seeds: tuple[str, ...], encoded: tuple[tuple[str, str], ...],
               limit: int) -> Scored:
    """Co-visitation neighbours of ``seeds`` from their (view→view, view→buy) rows, newest
    seed first and damped by rank, view→buy counting twice, the seeds left out."""
    scores: dict[str, float] = {}
    seen = set(seeds)
    for rank, (vv, vb) in enumerate(encoded):
        damp = 1.0 / (1 + rank)
        for text, w_rel in ((vv, 1.0), (vb, 2.0)):
            for sku, w in parse_weights(text).items():
                if sku not in seen:
                    scores[sku] = scores.get(sku, 0.0) + damp * w_rel * w
    return tuple((s, round(w, 6)) for s, w in strongest(scores, limit))


def similar_keys(key: str, trail: tuple[str, ...], keys_of: tuple[str, ...],
                 k: int, window: int = 10) -> list[tuple[str, float]]:
    """The ``k`` keys most like ``key``: each other key holding an item of ``key``'s
    ``trail`` (newest first, the first ``window``; ``keys_of``: each item's 'key,key,...'
    row) gains that item's weight, 1.0 for the newest and linearly less for older ones; best
    first, ties by key."""
    n = min(len(trail), window)
    sim: dict[str, float] = {}
    get = sim.get
    for pos, text in enumerate(keys_of[:n]):
        w = (n - pos) / n
        for other in text.split(","):
            if other and other != key:
                sim[other] = get(other, 0.0) + w
    return [(o, -w) for w, o in heapq.nsmallest(k, [(-w, o) for o, w in sim.items()])]


def session_knn(neighbours: list[tuple[str, float]], trails: tuple[str, ...],
                limit: int) -> Scored:
    """Session-kNN scores: each item of a neighbour's trail ('sku,sku,...', in
    ``neighbours``' order) gains the neighbour's similarity; the ``limit`` best.

    >>> nbs = similar_keys("me", ("A", "B"), ("u1,u2", "u2"), 5)
    >>> nbs
    [('u2', 1.5), ('u1', 1.0)]
    >>> session_knn(nbs, ("B,C", "A,D"), 3)
    (('B', 1.5), ('C', 1.5), ('A', 1.0))
    """
    score: dict[str, float] = {}
    get = score.get
    for (_, w), text in zip(neighbours, trails, strict=True):
        for s in text.split(","):
            if s:
                score[s] = get(s, 0.0) + w
    return tuple((s, round(w, 6)) for s, w in strongest(score, limit))


def merged_lists(encoded: tuple[str, ...], weighted: bool, limit: int) -> Scored:
    """Merge per-category lists ('sku:w,...' when ``weighted``, else 'sku,...' best first),
    the first category weighing most: an item keeps its best damped, scaled value."""
    scores: dict[str, float] = {}
    for rank, text in enumerate(encoded):
        entries = [e for e in text.split(",") if e]
        if not entries:
            continue
        damp = 1.0 / (1 + rank)
        top = float(entries[0].rpartition(":")[2]) if weighted else 1.0
        for pos, e in enumerate(entries):
            if weighted:
                sku, _, w = e.rpartition(":")
                v = float(w) / top if top > 0 else 0.0
            else:
                sku, v = e, 1.0 - pos / len(entries)
            scores[sku] = max(scores.get(sku, 0.0), damp * v)
    return tuple((s, round(w, 6)) for s, w in strongest(scores, limit))


def merge(interests: list[tuple[str, float]], found: dict[str, list[tuple[str, float]]],
          bought: set[str], limit: int) -> tuple[list[tuple[str, float]], dict[str, str]]:
    """Scores from each source scaled to [0, 1] and weighted (``WEIGHTS``); an item found
    by several sources adds them up; the items in ``bought`` (the caller's exclusions) are
    left out; the ``limit`` strongest, with the source that found each first."""
    scores: dict[str, float] = {}
    sources: dict[str, str] = {}
    for source, items in (("interest", interests), *found.items()):
        if not items:
            continue
        top = max(w for _, w in items) or 1.0
        weight = WEIGHTS[source] / top
        for sku, w in items:
            if sku in bought:
                continue
            scores[sku] = round(scores.get(sku, 0.0) + w * weight, 6)
            sources.setdefault(sku, source)
    best = strongest(scores, limit)  # by score, ties by sku (two C-level sorts)
    return best, {s: sources[s] for s, _ in best}


# ---------------------------------------------------------------------- native

def _native_neighbours(seeds: tuple[str, ...], encoded: tuple[tuple[str, str], ...],
                       limit: int) -> Scored:
    try:
        return tuple(_native.neighbours(seeds, encoded, limit))
    except ValueError:
        return neighbours(seeds, encoded, limit)


def _native_merged_lists(encoded: tuple[str, ...], weighted: bool, limit: int) -> Scored:
    try:
        return tuple(_native.merged_lists(encoded, weighted, limit))
    except ValueError:
        return merged_lists(encoded, weighted, limit)


def _native_merge(interests: list[tuple[str, float]],
                  found: dict[str, list[tuple[str, float]]], bought: set[str],
                  limit: int) -> tuple[list[tuple[str, float]], dict[str, str]]:
    lists = [("interest", WEIGHTS["interest"], interests)]
    lists += [(src, WEIGHTS[src], items) for src, items in found.items()]
    return _native.merge_sources(lists, bought if type(bought) is set else set(bought), limit)


def _native_similar_keys(key: str, trail: tuple[str, ...], keys_of: tuple[str, ...],
                         k: int, window: int = 10) -> list[tuple[str, float]]:
    return _native.similar_keys(key, list(trail), list(keys_of), k, window)


def _native_session_knn(neighbours: list[tuple[str, float]], trails: tuple[str, ...],
                        limit: int) -> Scored:
    return tuple(_native.session_knn(neighbours, list(trails), limit))


class Kernels(NamedTuple):
    native: bool
    neighbours: Callable[..., Scored]
    merged_lists: Callable[..., Scored]
    merge: Callable[..., tuple[list[tuple[str, float]], dict[str, str]]]
    similar_keys: Callable[..., list[tuple[str, float]]] = similar_keys
    session_knn: Callable[..., Scored] = session_knn


def kernels(native: bool = True) -> Kernels:
    """The retrieval functions: native when asked for and built, else the reference."""
    if native and _native is not None and hasattr(_native, "similar_keys"):
        return Kernels(True, _native_neighbours, _native_merged_lists, _native_merge,
                       _native_similar_keys, _native_session_knn)
    return Kernels(False, neighbours, merged_lists, merge)
