"""Candidate retrieval: the native kernels equal the Python reference to the last bit."""

from __future__ import annotations

import math
import random
import struct

import pytest

from features import retrieval
from features.retrieval import kernels

NATIVE = kernels(native=True)
pytestmark = pytest.mark.skipif(not NATIVE.native, reason="bespoke_native is not built")
PY = kernels(native=False)


def _bits(scored) -> list:
    return [(s, struct.pack("<d", w)) for s, w in scored]


def _weight(rnd: random.Random) -> str:
    pick = rnd.random()
    if pick < 0.6:
        return f"{rnd.uniform(0, 50):.4f}"
    if pick < 0.8:
        return f"{rnd.choice([0, 1, 2, 0.5, 1e-7, 123456.789]):.4f}"
    return repr(rnd.uniform(-1, 3))  # full precision, sometimes exponent notation


def _text(rnd: random.Random, skus: list[str], weighted: bool = True) -> str:
    n = rnd.randint(0, 12)
    parts = [f"{rnd.choice(skus)}:{_weight(rnd)}" if weighted else rnd.choice(skus)
             for _ in range(n)]
    if rnd.random() < 0.1:
        parts.insert(rnd.randint(0, len(parts)), "")  # empty entries are skipped
    return ",".join(parts)


def _skus(rnd: random.Random) -> list[str]:
    return [f"S{i}" for i in range(rnd.randint(1, 30))] + ["é:ü", "x:y:1"]


def test_neighbours_equal_reference():
    rnd = random.Random(7)
    for _ in range(3000):
        skus = _skus(rnd)
        seeds = tuple(rnd.sample(skus, rnd.randint(0, 3)))
        encoded = tuple((_text(rnd, skus), _text(rnd, skus)) for _ in seeds or ("x",))
        limit = rnd.randint(1, 40)
        assert _bits(NATIVE.neighbours(seeds, encoded, limit)) == \
            _bits(PY.neighbours(seeds, encoded, limit))


def test_session_knn_equals_reference():
    rnd = random.Random(9)
    for _ in range(2000):
        keys = [f"u{i}" for i in range(rnd.randint(1, 40))] + ["me"]
        skus = _skus(rnd)
        trail = tuple(rnd.sample(skus, rnd.randint(0, min(12, len(skus)))))
        keys_of = tuple(",".join(rnd.choice(keys) for _ in range(rnd.randint(0, 20)))
                        for _ in trail)
        k, window = rnd.randint(1, 50), rnd.choice((3, 10))
        nbs = NATIVE.similar_keys("me", trail, keys_of, k, window)
        assert _bits(nbs) == _bits(PY.similar_keys("me", trail, keys_of, k, window))
        trails = tuple(_text(rnd, skus, weighted=False) for _ in nbs)
        limit = rnd.randint(1, 40)
        assert _bits(NATIVE.session_knn(nbs, trails, limit)) == \
            _bits(PY.session_knn(nbs, trails, limit))


def test_merged_lists_equal_reference():
    rnd = random.Random(8)
    for _ in range(3000):
        skus = _skus(rnd)
        weighted = rnd.random() < 0.5
        encoded = tuple(_text(rnd, skus, weighted) for _ in range(rnd.randint(0, 4)))
        limit = rnd.randint(1, 40)
        assert _bits(NATIVE.merged_lists(encoded, weighted, limit)) == \
            _bits(PY.merged_lists(encoded, weighted, limit))


def test_merge_equals_reference():
    rnd = random.Random(9)
    for _ in range(3000):
        skus = _skus(rnd)

        def scored(n: int, skus: list[str] = skus) -> list[tuple[str, float]]:
            return [(rnd.choice(skus), rnd.choice([0.0, 1.0, rnd.uniform(0, 9),
                                                   rnd.uniform(0, 1e-3)]))
                    for _ in range(n)]

        interests = scored(rnd.randint(0, 20))
        found = {src: tuple(scored(rnd.randint(0, 30))) for src in ("covis", "trending", "new")
                 if rnd.random() < 0.8}
        bought = set(rnd.sample(skus, rnd.randint(0, 3)))
        limit = rnd.randint(1, 60)
        a_best, a_src = NATIVE.merge(interests, found, bought, limit)
        b_best, b_src = PY.merge(interests, found, bought, limit)
        assert _bits(a_best) == _bits(b_best) and a_src == b_src


def test_rounding_matches_python_round_near_halves():
    # values whose 7th decimal is a 5: the fast rounding path must hand these to the exact one
    rnd = random.Random(10)
    for _ in range(20000):
        x = rnd.randint(0, 10**6 - 1) / 1e6 + rnd.choice([0.0, 5e-7, -5e-7, 4.999999e-7, 1e-9])
        # with a top weight of 1.0 the interest source's score of A is round(x, 6)
        (best, _) = NATIVE.merge([("A", x), ("Z", 1.0)], {}, set(), 2)
        assert dict(best)["A"] == round(x, 6), x
    for x in (0.0000005, 0.0000015, 2.5e-7, 1.0000005, 123.4567895, math.pi):
        enc = (f"A:{x!r}",)
        assert _bits(NATIVE.merged_lists(enc * 2, True, 3)) == \
            _bits(PY.merged_lists(enc * 2, True, 3))


def test_unusual_weights_run_the_reference():
    # 'inf', underscores and spaces parse in Python's float(): the reference decides
    for text in ("A:inf", "A:1_0", "A: 2", "A:nan,B:1.0", "A:1e400"):
        assert NATIVE.neighbours((), ((text, ""),), 5) == PY.neighbours((), ((text, ""),), 5) \
            or any(math.isnan(w) for _, w in PY.neighbours((), ((text, ""),), 5))
    with pytest.raises(ValueError):
        NATIVE.merged_lists(("A:1.0,B:oops",), True, 5)  # as float("oops") in the reference
    assert retrieval.parse_weights("A:1,,B:2") == {"A": 1.0, "B": 2.0}
