"""The native ingest fast path against pydantic validation: for every record, the same item
inputs, user inputs, controls and dead letters, in the same order (generated traffic and
records mutated at random: wrong types, missing and extra fields, limits, odd strings)."""

from __future__ import annotations

import json
import random

import pytest

from connectors.generator import GenConfig, Generator
from features.ingest import expand, ingest, ingest_record
from features.native import available
from features.validate import RawRecord

pytestmark = pytest.mark.skipif(not available(), reason="bespoke_native is not built")

ODD = [None, True, 0, -1, 1, 1.0, 1.5, 10_000, 10_001, 100_000_001, 4_102_444_800_001,
       2 ** 63, 1e400, "", "x", "x" * 128, "x" * 129, "é" * 128, "é" * 129, "EUR", "eur",
       "EURO", [], ["marketing"], ["marketing", "spam"], {}, "page_view", 3.0e-7,
       {"color": "red", "size": "M"}, {"k": None}, {"k": "v" * 513}, ["bikes", "road"],
       ["x" * 65], ["EU", "US"], ["toolongregion"], [{"group_id": "g"}], 99, 100, False]
FIELDS = ["type", "schema_version", "event_id", "ts", "user_id", "session_id", "sku",
          "quantity", "unit_price", "price", "list_price", "currency", "on_hand", "reserved",
          "location", "purposes", "position", "surface", "referrer", "lines", "order_id",
          "unit_cost", "extra", "title", "category_path", "brand", "attributes",
          "option_groups", "compatibility", "min_age", "regions", "active"]


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    try:
        d = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(d, dict):
        return raw
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.3 and d:
            d.pop(rng.choice(sorted(d)))
        elif r < 0.8:
            d[rng.choice(FIELDS)] = rng.choice(ODD)
        elif "lines" in d and isinstance(d["lines"], list) and d["lines"]:
            line = d["lines"][0]
            if isinstance(line, dict):
                line[rng.choice(["sku", "quantity", "unit_price", "x"])] = rng.choice(ODD)
        else:
            d["type"] = rng.choice(["page_view", "click", "add_to_cart", "order", "inventory",
                                    "price", "consent", "catalog", "control"])
    text = json.dumps(d, separators=(",", ":"))
    if rng.random() < 0.05:
        text = " " + text + "\n"
    return text.encode()


def _records(n: int, seed: int, mutate: float) -> list[RawRecord]:
    rng = random.Random(seed)
    out = []
    gen = Generator(GenConfig(seed=seed, users=200, items=100, events=n))
    for i, r in enumerate(gen.records()):
        v = _mutate(rng, r.value) if rng.random() < mutate else r.value
        out.append(RawRecord("t", 0, i, v, 1_700_000_000_000))
    out.append(RawRecord("t", 0, len(out), None, 0))
    out.append(RawRecord("t", 0, len(out), b"{}", 0, error="broker said no"))
    return out


def _canon(res) -> list:
    items, users, controls, dead = expand(res)
    return [[repr(x) for x in items], [repr(x) for x in users],
            [c.model_dump_json() for c in controls], [d.model_dump_json() for d in dead]]


@pytest.mark.parametrize("seed,mutate", [(1, 0.0), (2, 0.5), (3, 1.0), (4, 1.0)])
def test_native_ingest_matches_pydantic(seed, mutate):
    recs = _records(3_000, seed, mutate)
    fast = ingest(recs, native=True)
    reference = ingest(recs, native=False)
    assert _canon(fast) == _canon(reference)
    assert reference[0] and reference[1] and reference[3]  # inputs and dead letters came out


def test_fast_path_takes_the_common_events():
    recs = _records(3_000, 5, 0.0)
    seen = []

    def counting(rec):
        seen.append(rec)
        return ingest_record(rec)

    import bespoke_native

    bespoke_native.ingest(recs, counting)
    valid_fell_back = {json.loads(r.value)["type"] for r in seen if not ingest_record(r)[3]}
    # of the valid events, only catalog and control ones are left to Python
    assert valid_fell_back == {"catalog"}
    assert 0 < len(seen) < 0.2 * len(recs)


def test_native_batches_reach_the_same_state_as_tuples():
    """Native input batches into native shards, against the Python path's tuples into the
    same shards: the same outputs."""
    from features.native import native_item_fold, native_user_fold

    recs = _records(3_000, 6, 0.2)
    fast, reference = ingest(recs, native=True), ingest(recs, native=False)
    assert any(type(x) is not tuple for x in fast[0])  # batches came out
    for fold, i in ((native_item_fold(3_600_000), 0), (native_user_fold(3_600_000), 1)):
        a, b = fold.new_shard(), fold.new_shard()
        out_a = a.apply(fast[i], False) + a.flush()
        out_b = b.apply(reference[i], False) + b.flush()
        key = repr
        assert sorted(map(key, (x for x in out_a if not hasattr(x, "tuples")))) == sorted(
            map(key, (x for x in out_b if not hasattr(x, "tuples"))))
        assert len(out_a) == len(out_b) > 100
