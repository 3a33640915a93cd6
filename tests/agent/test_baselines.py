"""The baselines against brute-force versions (recomputed from the whole history at every
step) on a small random stream: the same lists at every evaluation point."""

from __future__ import annotations

import random

import pytest

from agent.baselines import LastItemCovis, MostPopular, RecentThenCovis, SequentialRules, SessionKnn
from agent.prequential import Scoreboard


def _stream(n: int = 1500, seed: int = 3) -> list[tuple[str, str, int]]:
    rnd = random.Random(seed)
    items = [f"I{i:02d}" for i in range(40)]
    return [(f"k{rnd.randrange(60)}", rnd.choice(items[:rnd.choice((10, 40))]), t * 1000)
            for t in range(n)]


def _brute_popular(events, k):
    counts: dict[str, int] = {}
    for _, s, _ in events:
        counts[s] = counts.get(s, 0) + 1
    return sorted(counts, key=lambda s: (-counts[s], s))[:k]


def _brute_covis(events, last_item, k):
    last: dict[str, str] = {}
    co: dict[str, dict[str, int]] = {}
    for key, s, _ in events:
        p = last.get(key)
        if p is not None and p != s:
            co.setdefault(p, {})[s] = co.setdefault(p, {}).get(s, 0) + 1
            co.setdefault(s, {})[p] = co.setdefault(s, {}).get(p, 0) + 1
        last[key] = s
    row = co.get(last_item, {})
    out = sorted(row, key=lambda s: (-row[s], s))[:k]
    return out + [s for s in _brute_popular(events, k + len(out)) if s not in out][:k - len(out)]


def _brute_knn(events, key, history, k, window=10, per_item=50, session_items=20, nb=50):
    items: dict[str, list[str]] = {}
    holders: dict[str, list[str]] = {}
    for kk, s, _ in events:
        lst = items.setdefault(kk, [])
        if s in lst:
            lst.remove(s)
        lst.append(s)
        del lst[:-session_items]
        h = holders.setdefault(s, [])
        if kk in h:
            h.remove(kk)
        h.append(kk)
        del h[:-per_item]
    current: list[str] = []
    for s in reversed(history):
        if s not in current:
            current.append(s)
    current = current[:window]
    sim: dict[str, float] = {}
    for pos, s in enumerate(current):
        for o in holders.get(s, []):
            if o != key:
                sim[o] = sim.get(o, 0.0) + (len(current) - pos) / len(current)
    nbs = sorted(sim, key=lambda o: (-sim[o], o))[:nb]
    score: dict[str, float] = {}
    for o in nbs:
        for s in items[o]:
            score[s] = score.get(s, 0.0) + sim[o]
    return sorted(score, key=lambda s: (-score[s], s))[:k]


def _brute_rules(events, last_item, k, steps=10):
    """Every pair of a key's events at most ``steps`` apart (summed in event order)."""
    seqs: dict[str, list[str]] = {}
    score: dict[str, float] = {}
    for key, b, _ in events:
        seq = seqs.setdefault(key, [])
        for i in range(len(seq) - 1, max(-1, len(seq) - steps - 1), -1):  # nearest first
            if seq[i] == last_item and b != last_item:
                score[b] = score.get(b, 0.0) + 1.0 / (len(seq) - i)
        seq.append(b)
    out = sorted(score, key=lambda s: (-score[s], s))[:k]
    return out + [s for s in _brute_popular(events, k + len(out)) if s not in out][:k - len(out)]


def test_baselines_match_brute_force():
    events = _stream()
    pop, covis, recent, knn = MostPopular(), LastItemCovis(), RecentThenCovis(), SessionKnn()
    rules = SequentialRules()
    history: dict[str, list[str]] = {}
    checked = 0
    for i, (key, s, ts) in enumerate(events):
        hist = history.get(key)
        if hist and i % 7 == 0:
            done = events[:i]
            assert pop.recommend(key, hist, 10) == _brute_popular(done, 10)
            assert covis.recommend(key, hist, 10) == _brute_covis(done, hist[-1], 10)
            own = list(dict.fromkeys(reversed(hist)))[:10]
            want = own + [x for x in _brute_covis(done, hist[-1], 20) if x not in own]
            assert recent.recommend(key, hist, 10) == want[:10]
            assert knn.recommend(key, hist, 10) == _brute_knn(done, key, hist, 10)
            assert rules.recommend(key, hist, 10) == _brute_rules(done, hist[-1], 10)
            checked += 1
        for r in (pop, covis, recent, knn, rules):
            r.learn(key, s, ts)
        history.setdefault(key, []).append(s)
    assert checked > 150


def test_scoreboard_by_hand():
    """Two targets: one at rank 2 of 3, one missed."""
    b = Scoreboard((1, 2, 3))
    b.target(seen_before=True)
    b.add("x", ["A", "B", "C"], "B")
    b.target(seen_before=False)
    b.add("x", ["A", "B", "C"], "D")
    r = b.result(items=6)["x"]
    assert (r["hr@1"], r["hr@2"], r["hr@3"]) == (0.0, 0.5, 0.5)
    assert (r["mrr@1"], r["mrr@2"], r["mrr@3"]) == (0.0, 0.25, 0.25)
    assert (r["coverage@1"], r["coverage@3"]) == (round(1 / 6, 4), 0.5)
    assert b.seen_share == 0.5


def test_session_knn_gives_the_same_lists_through_the_native_kernels():
    """The baseline's native path (the live source's kernels) and its Python loop agree at
    every step, at several list sizes; an id with a comma sends it back to Python."""
    native, plain = SessionKnn(native=True), SessionKnn(native=False)
    assert plain._kernels is None
    if native._kernels is None:
        pytest.skip("bespoke_native is not built")
    history: dict[str, list[str]] = {}
    for i, (key, s, ts) in enumerate(_stream(3000, seed=5)):
        hist = history.get(key)
        if hist:
            k = (5, 10, 40)[i % 3]
            assert native.recommend(key, hist, k) == plain.recommend(key, hist, k), i
        for r in (native, plain):
            r.learn(key, s, ts)
        history.setdefault(key, []).append(s)
    native.learn("a,b", "I01", 0)
    assert native._kernels is None
