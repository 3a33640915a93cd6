"""The popular list (``features.category_features.PopularFold``): the catalog's most popular
items, the candidate source of keys with no history and of catalogs without categories."""

from __future__ import annotations

import random

from features.category_features import (
    ALL,
    POP_CAPACITY,
    POP_HL,
    POP_K,
    PopularFold,
    PopularInput,
    popular_inputs,
)
from features.ingest import expand, ingest
from features.validate import RawRecord


def _popular_stream(n: int, items: int, seed: int) -> list:
    rng = random.Random(seed)
    return [PopularInput(ALL, rng.randrange(0, 30 * 86_400_000), f"S{rng.randrange(items):03d}",
                         rng.choice((1.0, 1.0, 3.0, 5.0))) for _ in range(n)]


def _published(xs: list) -> list[tuple[str, float]]:
    f = PopularFold()
    s = f.new()
    for x in xs:
        f.apply(s, x)
    text = f.rows(s, ALL)[0].fields["popular"]
    return [(e.rpartition(":")[0], float(e.rpartition(":")[2])) for e in text.split(",")]


def test_popular_list_is_the_decayed_brute_force_top_when_the_catalog_fits():
    xs = _popular_stream(3000, 120, seed=4)
    as_of = max(x.ts for x in xs)
    brute: dict[str, float] = {}
    for x in xs:
        brute[x.sku] = brute.get(x.sku, 0.0) + x.value * 2.0 ** (-(as_of - x.ts) / POP_HL)
    want = sorted(brute.items(), key=lambda kv: (-kv[1], kv[0]))[:POP_K]
    got = _published(xs)
    assert [s for s, _ in got] == [s for s, _ in want]
    assert all(abs(a - b) <= 1e-4 * max(1.0, b) for (_, a), (_, b) in zip(got, want, strict=True))


def test_popular_list_is_order_independent_and_bounded():
    xs = _popular_stream(4000, 2000, seed=5)  # more items than the list keeps
    shuffled = xs[:]
    random.Random(1).shuffle(shuffled)
    f = PopularFold()
    s = f.new()
    for x in xs:
        f.apply(s, x)
    assert len(s.pop.w) <= POP_CAPACITY
    # a catalog that fits gives the same list in any order (forward decay)
    few = _popular_stream(2000, 100, seed=6)
    again = few[:]
    random.Random(2).shuffle(again)
    assert _published(few) == _published(again)


def test_popular_inputs_come_from_behaviour_only_and_from_native_batches_alike():
    docs = [b'{"type":"page_view","event_id":"e1","ts":5,"user_id":"u1","session_id":"s",'
            b'"sku":"A"}',
            b'{"type":"add_to_cart","event_id":"e2","ts":6,"user_id":"u1","session_id":"s",'
            b'"sku":"B","quantity":1}',
            b'{"type":"inventory","event_id":"e3","ts":7,"sku":"A","location":"w1",'
            b'"on_hand":3,"reserved":0}']
    recs = [RawRecord("f", 0, i, d, 0) for i, d in enumerate(docs)]
    flat = [p for x in expand(ingest(recs))[0] for p in popular_inputs(x)]
    batched = [p for x in ingest(recs)[0] for p in popular_inputs(x)]
    assert [(p.sku, p.value) for p in flat] == [("A", 1.0), ("B", 3.0)]
    assert batched == flat
