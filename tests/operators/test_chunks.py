"""The chunk plumbing: ``split_by_type`` (plain and keyed) and ``sharded_fold``'s steps."""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from operators.chunks import split_by_type
from operators.sharded_fold import sharded_fold, sharded_fold_keyed


class A(tuple):
    pass


class B(tuple):
    pass


def _split(chunks: list, keyed: bool) -> list[list]:
    flow = Dataflow("split")
    up = op.input("in", flow, TestingSource(chunks))
    outs: list[list] = [[], [], []]
    for i, s in enumerate(split_by_type("split", up, (A, B), keyed=keyed)):
        op.output(f"out{i}", s, TestingSink(outs[i]))
    run_main(flow)
    return outs


def test_split_by_type_sends_each_kind_its_items_in_order() -> None:
    chunks = [[A((1,)), B((2,)), "x", A((3,))], [B((4,))], ["y", 5]]
    a, b, rest = (sum(o, []) for o in _split(chunks, keyed=False))
    assert a == [A((1,)), A((3,))]
    assert b == [B((2,)), B((4,))]
    assert rest == ["x", "y", 5]  # neither kind: the last stream, in input order


def test_split_by_type_keyed_reads_pairs_and_emits_plain_chunks() -> None:
    chunks = [("k1", [A((1,)), "x"]), ("k2", [B((2,)), A((3,))])]
    a, b, rest = _split(chunks, keyed=True)
    assert sum(a, []) == [A((1,)), A((3,))] and sum(b, []) == [B((2,))]
    assert sum(rest, []) == ["x"]
    assert all(type(c) is list and c for out in (a, b, rest) for c in out)  # no empty chunks


class _Count:
    """Counts items per entity; emits (entity, count) per item."""

    def new(self) -> dict:
        return {"n": 0}

    def apply(self, st: dict, item: tuple) -> list:
        st["n"] += 1
        return [(item[0], st["n"])]

    def rows(self, st: dict, key: str) -> list:
        return []


def test_sharded_fold_and_its_keyed_form_keep_per_entity_order() -> None:
    items = [[("u1", 0), ("u2", 0), ("u1", 0)], [("u3", 0), ("u1", 0), ("u2", 0)]]
    for keyed in (False, True):
        flow = Dataflow("fold")
        up = op.input("in", flow, TestingSource(items))
        if keyed:
            out = sharded_fold_keyed("f", up, _Count(), lambda x: x[0], shards=4,
                                     mirror_every_s=0, snapshots=False)
            out = op.flat_map("values", out, lambda kv: kv[1])
        else:
            out = op.flat_map("values", sharded_fold("f", up, _Count(), lambda x: x[0],
                                                     shards=4, mirror_every_s=0,
                                                     snapshots=False), lambda c: c)
        got: list = []
        op.output("out", out, TestingSink(got))
        run_main(flow)
        assert sorted(got) == [("u1", 1), ("u1", 2), ("u1", 3), ("u2", 1), ("u2", 2),
                               ("u3", 1)]
        per_u1 = [n for u, n in got if u == "u1"]
        assert per_u1 == [1, 2, 3]
