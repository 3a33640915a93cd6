"""Validate step: raw records → valid events and dead letters (the flow never stops)."""

from __future__ import annotations

from typing import NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.events import DeadLetter, Inbound
from features.validate import RawRecord, validate_record
from operators.chunks import split_by_type


class Validated(NamedTuple):
    """Chunk streams (see ``operators.chunks``)."""

    events: Stream[list[Inbound]]
    dead_letters: Stream[list[DeadLetter]]


def validate(step_id: str, up: Stream[RawRecord], fmt: str = "native") -> Validated:
    """One Bytewax batch of raw records → one chunk of events and one of dead letters."""
    def check(batch: list[RawRecord]) -> list[list]:
        out: list = []
        for rec in batch:
            events, dead = validate_record(rec, fmt)
            out += events
            out += dead
        return [out] if out else []

    checked = op.flat_map_batch(f"{step_id}_check", up, check)
    dead, events = split_by_type(f"{step_id}_split", checked, (DeadLetter,))
    return Validated(events, dead)
