"""Validate step: raw records → the feature steps' inputs and dead letters (the flow never
stops on bad input; a control event here is a dead letter: controls have their own topic,
``operators.control``). See ``features.ingest``."""

from __future__ import annotations

from typing import NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.events import DeadLetter
from features.ingest import ingest
from features.input_monitor import kind_counts
from features.validate import RawRecord


class Validated(NamedTuple):
    """Chunk streams (see ``operators.chunks``)."""

    item_inputs: Stream[list[tuple]]
    user_inputs: Stream[list[tuple]]
    dead_letters: Stream[list[DeadLetter]]
    counts: Stream[tuple] | None = None  # (kind_counts, dead letters) per batch


def validate(step_id: str, up: Stream[RawRecord], fmt: str = "native",
             native: bool = True, max_future_ms: int | None = None,
             count_bucket_ms: int = 0) -> Validated:
    """One Bytewax batch of raw records → one chunk of each output (where not empty);
    ``count_bucket_ms``: also each batch's inputs per bucket of event time and type, and
    its dead letters (``features.input_monitor.kind_counts``)."""
    def check(batch: list[RawRecord]) -> list[tuple]:
        return [ingest(batch, fmt, native, max_future_ms)]

    bundles = op.flat_map_batch(f"{step_id}_check", up, check)

    def part(i: int, name: str) -> Stream[list]:
        return op.flat_map_batch(f"{step_id}_{name}", bundles,
                                 lambda bs: [b[i] for b in bs if b[i]])

    counts = None
    if count_bucket_ms > 0:
        counts = op.flat_map_batch(
            f"{step_id}_counts", bundles,
            lambda bs: [(kind_counts(b[0], b[1], count_bucket_ms), len(b[3])) for b in bs])
    return Validated(part(0, "items"), part(1, "users"), part(3, "dead"), counts)
