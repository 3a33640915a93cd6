"""Validate step: raw records → valid events and dead letters (the flow never stops)."""

from __future__ import annotations

from typing import NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.events import DeadLetter, Inbound
from features.validate import RawRecord, validate_record


class Validated(NamedTuple):
    events: Stream[Inbound]
    dead_letters: Stream[DeadLetter]


def validate(step_id: str, up: Stream[RawRecord], fmt: str = "native") -> Validated:
    def check(rec: RawRecord) -> list[Inbound | DeadLetter]:
        events, dead = validate_record(rec, fmt)
        return [*events, *dead]

    both = op.flat_map(f"{step_id}_check", up, check)
    split = op.branch(f"{step_id}_split", both, lambda x: not isinstance(x, DeadLetter))
    return Validated(split.trues, split.falses)  # type: ignore[arg-type]
