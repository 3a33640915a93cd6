"""The versioned fact table decisions read in event time (``features.facts``): a read as
of ``t`` gives, per view, the newest version before ``t`` that has not expired by then,
whatever order the versions arrived in and whatever was read before (its cache of the last
read's range must never serve a stale row); compaction and a dump/load round trip do not
change what a read at or after the horizon sees."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from features.facts import DerivedFacts, FactTable, as_of, cut
from features.store import StorePurge, StoreWrite

VIEWS = ("price", "stock", "pop")

writes = st.tuples(st.sampled_from(VIEWS), st.integers(0, 5_000), st.sampled_from([0, 0, 1, 3]),
                   st.integers(0, 99))
steps = st.lists(st.one_of(
    st.tuples(st.just("w"), writes),
    st.tuples(st.just("r"), st.integers(0, 9_000)),
), min_size=1, max_size=120)


def expected(history: dict[tuple[str, int], tuple[int, int]], t: int) -> dict | None:
    """Brute force: per view the newest version with ts < t, unexpired at t."""
    out = {}
    for view in VIEWS:
        found = [(ts, v) for (vw, ts), v in history.items() if vw == view and ts < t]
        if found:
            ts, (ttl, x) = max(found)
            if ttl == 0 or ts + ttl * 1000 >= t:
                out[f"{view}.x"] = x
    return out or None


@settings(max_examples=400, deadline=None)
@given(steps)
def test_as_of_reads_match_brute_force(ops):
    table = FactTable()
    history: dict[tuple[str, int], tuple[int, int]] = {}
    for kind, arg in ops:
        if kind == "w":
            view, ts, ttl, x = arg
            table.apply([StoreWrite("item", "A", view, {"x": x}, ts, ttl)])
            history[(view, ts)] = (ttl, x)  # the same version again: the last write's value
        else:
            with as_of(arg):
                got = table.read_many("item", ["A", "missing"])
            assert got == [expected(history, arg), None]


@settings(max_examples=200, deadline=None)
@given(st.lists(writes, min_size=1, max_size=80), st.integers(0, 6_000),
       st.lists(st.integers(0, 9_000), min_size=1, max_size=20))
def test_compaction_and_reload_keep_reads_after_the_horizon(ws, horizon, reads):
    table = FactTable()
    table.apply([StoreWrite("item", "A", v, {"x": x}, ts, ttl) for v, ts, ttl, x in ws])
    before = {}
    for t in reads:
        with as_of(max(t, horizon)):
            before[t] = table.read_many("item", ["A"])
    table.compact(horizon)
    again = FactTable()
    again.load(table.dump({("item", "A")}))
    for t in reads:
        with as_of(max(t, horizon)):
            assert table.read_many("item", ["A"]) == before[t]
            assert again.read_many("item", ["A"]) == before[t]


def test_only_fact_entities_are_kept_and_purges_are_exact():
    table = FactTable()
    table.apply([StoreWrite("user", "u1", "v", {"x": 1}, 1, 0),
                 StoreWrite("category", "bikes", "v", {"x": 2}, 1, 0),
                 StoreWrite("category", "bikes/x", "v", {"x": 3}, 1, 0)])
    assert table.read_many("user", ["u1"]) == [None]
    table.apply([StorePurge("category", "bikes")])
    assert table.read_many("category", ["bikes", "bikes/x"]) == [None, {"v.x": 3}]


def test_derived_facts_follow_new_versions():
    table = FactTable()
    derived = DerivedFacts(table, lambda row: (row or {}).get("stock.n"))
    table.apply([StoreWrite("item", "A", "stock", {"n": 5}, 1_000, 0)])
    with as_of(cut(1_500, 1_000)):
        assert derived.read_many("item", ["A"]) == [5]
    table.apply([StoreWrite("item", "A", "stock", {"n": 0}, 2_500, 0)])
    with as_of(cut(2_600, 1_000)):
        assert derived.read_many("item", ["A"]) == [0]
    with as_of(cut(1_500, 1_000)):  # an older tick still sees the older version
        assert derived.read_many("item", ["A"]) == [5]
