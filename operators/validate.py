"""Validate step: raw records → valid events and dead letters (the flow never stops)."""

from __future__ import annotations

from typing import NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.events import DeadLetter, Inbound
from features.validate import RawRecord, validate_record


class Validated(NamedTuple):
    """Chunk streams (see ``operators.chunks``)."""

    events: Stream[list[Inbound]]
    dead_letters: Stream[list[DeadLetter]]


def validate(step_id: str, up: Stream[RawRecord], fmt: str = "native") -> Validated:
    """One Bytewax batch of raw records → one chunk of events and one of dead letters."""
    def check(batch: list[RawRecord]) -> list[tuple[bool, list]]:
        good: list = []
        bad: list = []
        for rec in batch:
            events, dead = validate_record(rec, fmt)
            good += events
            bad += dead
        return [(ok, chunk) for ok, chunk in ((True, good), (False, bad)) if chunk]

    both = op.flat_map_batch(f"{step_id}_check", up, check)
    split = op.branch(f"{step_id}_split", both, lambda x: x[0])
    return Validated(op.map(f"{step_id}_events", split.trues, lambda x: x[1]),
                     op.map(f"{step_id}_dead", split.falses, lambda x: x[1]))
