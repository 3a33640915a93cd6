"""The hold step's rules (``operators.decision_hold``), driven by hand: a trigger leaves
only once a closed epoch (``snapshot``) has shown every expected partition past its cut
plus the lateness; ticks received in an open epoch do not count; ended partitions stop
holding; one its source says is silent stops until it speaks; triggers leave in (cut,
arrival) order; with learned models, a trigger waits until nothing at or before its cut
minus the model delay is pinned; a resumed shard waits for its first closed epoch; the end
of input lets everything through."""

from __future__ import annotations

from types import SimpleNamespace

from features.facts import ClockTick, FactTable
from operators.decision_hold import HoldConfig, _HoldLogic

CFG = HoldConfig(lateness_ms=2_000, tick_ms=1_000, parts=("a:0", "b:0"))


def trig(user: str, ts: int) -> SimpleNamespace:
    return SimpleNamespace(user_id=user, ts=ts)


def released(out: list) -> list[tuple[str, int]]:
    return [(f.user_id, f.ts) for chunk in out for f in chunk]


def test_a_trigger_waits_for_every_partition_and_a_closed_epoch():
    h = _HoldLogic(CFG, FactTable(), None, snapshots=False)
    out, _ = h.on_batch([("t", [trig("u1", 10_500), trig("u2", 10_200)]),
                         ("c", [ClockTick("a:0", 20_000)])])
    assert released(out) == []
    h.snapshot()  # closed, but partition b has not been heard from
    assert released(h.on_notify()[0]) == []
    h.on_batch([("c", [ClockTick("b:0", 12_999)])])
    assert released(h.on_notify()[0]) == []  # the tick is in an open epoch
    h.snapshot()  # b's clock 12,999 - 2,000 < cut 11,000
    assert released(h.on_notify()[0]) == []
    h.on_batch([("c", [ClockTick("b:0", 13_000)])])
    h.snapshot()
    assert released(h.on_notify()[0]) == [("u1", 10_500), ("u2", 10_200)]  # arrival order


def test_ended_and_silent_partitions_stop_holding_back():
    h = _HoldLogic(CFG, FactTable(), None, snapshots=False)
    h.on_batch([("t", [trig("u1", 5_000)]), ("c", [ClockTick("a:0", 9_000),
                                                    ClockTick("b:0", 5_100, end=True)])])
    h.snapshot()
    assert released(h.on_notify()[0]) == [("u1", 5_000)]  # b has ended: a's clock counts

    quiet = _HoldLogic(CFG, FactTable(), None, snapshots=False)
    quiet.on_batch([("t", [trig("u1", 5_000), trig("u2", 8_000)]),
                    ("c", [ClockTick("a:0", 9_000), ClockTick("b:0", None, idle=True)])])
    quiet.snapshot()  # b never spoke, and its source says it is silent: only a holds
    assert released(quiet.on_notify()[0]) == [("u1", 5_000)]
    quiet.on_batch([("c", [ClockTick("b:0", 6_000)])])  # b speaks again: it holds again
    quiet.on_batch([("c", [ClockTick("a:0", 20_000)])])
    quiet.snapshot()
    assert released(quiet.on_notify()[0]) == []


def test_resumed_shard_waits_for_its_first_closed_epoch_and_eof_releases_all():
    h = _HoldLogic(CFG, FactTable(), None, snapshots=True)
    h.on_batch([("t", [trig("u1", 1_000), trig("u2", 50_000)]),
                ("c", [ClockTick("a:0", 9_000), ClockTick("b:0", 9_000)])])
    blob = h.snapshot()
    assert released(h.on_notify()[0]) == [("u1", 1_000)]
    resumed = _HoldLogic(CFG, FactTable(), blob, snapshots=True)
    assert released(resumed.on_notify()[0]) == []  # fresh: nothing before a closed epoch
    assert released(resumed.on_eof()[0]) == [("u1", 1_000), ("u2", 50_000)]


def test_a_trigger_waits_for_the_outcomes_its_model_must_have_learned():
    cfg = HoldConfig(lateness_ms=2_000, tick_ms=1_000, parts=("a:0",), shards=1,
                     model_delay_ms=5_000)
    table = FactTable()
    table.pin(4_000, "learn:feed_ranker")  # an outcome known at tick 4,000, not yet learned
    h = _HoldLogic(cfg, table, None, snapshots=False)
    h.on_batch([("t", [trig("late", 8_500), trig("early", 3_500)]),
                ("c", [ClockTick("a:0", 20_000)])])
    h.snapshot()
    # the earlier trigger goes first (cut order); the later one's model, as of 9,000 - 5,000,
    # would miss the outcome pinned at 4,000
    assert released(h.on_notify()[0]) == [("early", 3_500)]
    table.unpin(4_000, "learn:feed_ranker")  # learned
    assert released(h.on_notify()[0]) == []  # "early" (cut 4,000) is not decided yet
    table.unpin(4_000)  # decided
    assert released(h.on_notify()[0]) == [("late", 8_500)]
