"""Validate raw records into events; everything that fails becomes a dead letter.

>>> ok, bad = validate_record(RawRecord("clicks", 0, 5, b"not json", 1_700_000_000_000))
>>> ok, bad[0].offset, bad[0].error.split(":")[0]
([], 5, 'invalid_json')
"""

from __future__ import annotations

import base64
from typing import NamedTuple

from pydantic import ValidationError

from features.events import DeadLetter, Inbound, inbound_from_dict, parse_inbound
from features.formats import decode_record

STEP = "validate"
# a source's last record of a partition that has ended (value None): not an event, it
# tells the flow's input clock that this partition will not move it again
END_OF_PARTITION = "end of partition"
# a source's word that a partition has been silent a while (value None): it stops holding
# decisions back until its next record (operators.decision_hold)
IDLE_PARTITION = "partition idle"


def is_end_of_partition(rec: RawRecord) -> bool:
    return rec.value is None and rec.error == END_OF_PARTITION


def is_marker(rec: RawRecord) -> bool:
    """A source's word about a partition (its end, its silence), not a record of it."""
    return rec.value is None and rec.error in (END_OF_PARTITION, IDLE_PARTITION)


class RawRecord(NamedTuple):
    """One record as read from a source, before any parsing."""

    source: str  # topic or file name
    partition: int
    offset: int
    value: bytes | None
    received_ts: int  # epoch ms the source saw it (Kafka timestamp or read time)
    error: str | None = None  # set when the source itself failed on this record


def _reason(err: Exception) -> str:
    if isinstance(err, ValidationError):
        parts = []
        for e in err.errors(include_url=False)[:5]:
            loc = ".".join(str(x) for x in e["loc"])
            parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
        kind = "invalid_json" if any(e["type"] == "json_invalid" for e in err.errors()) else (
            "schema_violation")
        more = f" (+{err.error_count() - 5} more)" if err.error_count() > 5 else ""
        return f"{kind}: " + "; ".join(parts) + more
    return f"undecodable: {err}"


def dead_letter(rec: RawRecord, error: str, step: str = STEP) -> DeadLetter:
    """A dead letter for ``rec`` whose id is fixed by its position in the source."""
    value = rec.value or b""
    return DeadLetter(
        id=f"dlq:{rec.source}:{rec.partition}:{rec.offset}",
        ts=max(0, rec.received_ts),
        source=rec.source,
        partition=rec.partition,
        offset=rec.offset,
        original=base64.b64encode(value[: 3 * 64 * 1024]).decode(),
        error=error[:4096],
        step=step,
    )


def validate_record(rec: RawRecord, fmt: str = "native", max_future_ms: int | None = None
                    ) -> tuple[list[Inbound], list[DeadLetter]]:
    """Turn one raw record into valid events and dead letters (never raises).

    ``max_future_ms``: an event whose time is more than this after its record's received
    time (the Kafka record timestamp, a file's modification time; when known) is a dead
    letter: one far-future event would otherwise move its entities' watermarks years ahead.

    >>> rec = RawRecord("t", 0, 9, b'{"type":"page_view","event_id":"e","ts":4102444000000,'
    ...                 b'"user_id":"u","session_id":"s","sku":"A"}', 1_700_000_000_000)
    >>> validate_record(rec, max_future_ms=3_600_000)[1][0].error.split(":")[0]
    'future'
    """
    try:
        events, dead = _validate(rec, fmt)
    except Exception as e:  # a bug here must cost one record, never the flow
        return [], [dead_letter(rec, f"undecodable: {type(e).__name__}: {e}")]
    if events and max_future_ms is not None and rec.received_ts > 0:
        limit = rec.received_ts + max_future_ms
        ahead = max(ev.ts for ev in events)
        if ahead > limit:
            return [], [dead_letter(rec, f"future: event time {ahead} is "
                                         f"{(ahead - rec.received_ts) // 1000} s after the "
                                         f"record's time {rec.received_ts} (at most "
                                         f"{max_future_ms // 1000} s)")]
    return events, dead


def _validate(rec: RawRecord, fmt: str) -> tuple[list[Inbound], list[DeadLetter]]:
    if rec.error is not None:
        if rec.error.startswith("duplicate:"):  # connectors.dedup
            return [], [dead_letter(rec, rec.error)]
        return [], [dead_letter(rec, f"source_error: {rec.error}")]
    if rec.value is None:
        return [], [dead_letter(rec, "empty: record has no value")]
    if not rec.value.strip():
        return [], [dead_letter(rec, "blank: the record holds only whitespace")]
    if fmt == "native":
        try:
            return [parse_inbound(rec.value)], []
        except (ValidationError, ValueError) as e:
            return [], [dead_letter(rec, _reason(e))]
    try:
        dicts = decode_record(fmt, rec.value, rec.offset)
    except ValueError as e:
        return [], [dead_letter(rec, f"undecodable: {e}")]
    events: list[Inbound] = []
    for d in dicts:
        try:
            events.append(inbound_from_dict(d))
        except ValidationError as e:
            return [], [dead_letter(rec, _reason(e))]
    return events, []
