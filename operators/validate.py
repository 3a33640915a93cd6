"""Validate step: raw records → the feature steps' inputs and dead letters (the flow never
stops on bad input; a control event here is a dead letter: controls have their own topic,
``operators.control``). See ``features.ingest``.

It also keeps the flow's input clock: per input partition, the newest event time read so
far, sent on as ``ClockTick``s (``operators.decision_hold`` lets a decision through once
every partition has passed its time), and counts the item inputs that arrive more than the
decision lateness behind their partition's clock (``ClockTick.late``): a decision may or
may not have seen those, so they are what reproducibility does not cover."""

from __future__ import annotations

from typing import Any, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.events import DeadLetter
from features.facts import ClockTick
from features.ingest import ingest
from features.input_monitor import kind_counts
from features.validate import END_OF_PARTITION, IDLE_PARTITION, RawRecord, is_marker
from operators.decision_hold import STATS


class Validated(NamedTuple):
    """Chunk streams (see ``operators.chunks``)."""

    item_inputs: Stream[list[tuple]]
    user_inputs: Stream[list[tuple]]
    dead_letters: Stream[list[DeadLetter]]
    counts: Stream[tuple] | None = None  # (kind_counts, dead letters) per batch
    clock: Stream[list[ClockTick]] | None = None  # one tick per partition and batch


def _times(xs: list[Any]) -> list[int]:
    out: list[int] = []
    for x in xs:
        if isinstance(x, tuple):
            out.append(x[2])
        else:
            out += x.times()  # a native batch
    return out


class InputClock:
    """Per partition, the newest event time of its inputs so far (one worker reads a
    partition: no two threads share an entry)."""

    def __init__(self, lateness_ms: int) -> None:
        self.lateness = lateness_ms
        self.newest: dict[str, int] = {}

    def tick(self, part: str, items: list[Any], users: list[Any], end: bool,
             idle: bool = False) -> ClockTick:
        before = self.newest.get(part)
        item_ts = _times(items)
        late = 0
        if before is not None:
            floor = before - self.lateness
            late = sum(1 for t in item_ts if t < floor)
            if late:
                STATS.add(late_inputs=late)
        newest = max([*item_ts, *_times(users)], default=before)
        if newest is not None and before is not None:
            newest = max(newest, before)
        if newest is not None:
            self.newest[part] = newest
        return ClockTick(part, newest, late, end, idle)


def validate(step_id: str, up: Stream[RawRecord], fmt: str = "native",
             native: bool = True, max_future_ms: int | None = None,
             count_bucket_ms: int = 0, clock_lateness_ms: int | None = None) -> Validated:
    """One Bytewax batch of raw records → one chunk of each output (where not empty);
    ``count_bucket_ms``: also each batch's inputs per bucket of event time and type, and
    its dead letters (``features.input_monitor.kind_counts``); ``clock_lateness_ms``: also
    the input clock (``InputClock``)."""
    clock = InputClock(clock_lateness_ms) if clock_lateness_ms is not None else None

    def check(batch: list[RawRecord]) -> list[tuple]:
        if clock is None:
            batch = [r for r in batch if not is_marker(r)]
            return [(*ingest(batch, fmt, native, max_future_ms), [])] if batch else []
        parts: dict[str, list[RawRecord]] = {}
        for r in batch:  # a batch may hold several partitions' records
            parts.setdefault(f"{r.source}:{r.partition}", []).append(r)
        out = []
        for part, recs in parts.items():
            marks = [r.error for r in recs if is_marker(r)]
            if marks:
                recs = [r for r in recs if not is_marker(r)]
            bundle = ingest(recs, fmt, native, max_future_ms) if recs else ([], [], [], [])
            # silent: the partition's last word in this batch was that it is idle
            idle = bool(marks) and marks[-1] == IDLE_PARTITION and not recs
            out.append((*bundle, [clock.tick(part, bundle[0], bundle[1],
                                             END_OF_PARTITION in marks, idle)]))
        return out

    bundles = op.flat_map_batch(f"{step_id}_check", up, check)

    def part(i: int, name: str) -> Stream[list]:
        return op.flat_map_batch(f"{step_id}_{name}", bundles,
                                 lambda bs: [b[i] for b in bs if b[i]])

    counts = None
    if count_bucket_ms > 0:
        counts = op.flat_map_batch(
            f"{step_id}_counts", bundles,
            lambda bs: [(kind_counts(b[0], b[1], count_bucket_ms), len(b[3])) for b in bs])
    return Validated(part(0, "items"), part(1, "users"), part(3, "dead"), counts,
                     part(4, "clock") if clock is not None else None)
