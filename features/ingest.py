"""Raw records → what the feature steps take: item inputs, user inputs, control events and
dead letters, in record order.

The native fast path (``bespoke_native.ingest``, see ``native/src/ingest.rs``) turns the
common events (behaviour, stock, price, consent) straight into input tuples; every record
it is not sure of comes here, to ``ingest_record``: pydantic validation (``validate_record``)
and ``item_inputs``/``user_inputs``. Tests hold the two paths to the same outputs.

>>> from features.validate import RawRecord
>>> raw = RawRecord("f", 0, 1, b'{"type":"page_view","event_id":"e1","ts":5,'
...                 b'"user_id":"u1","session_id":"s1","sku":"A"}', 0)
>>> items, users, controls, dead = ingest([raw, raw._replace(value=b"{")])
>>> items, users[0].kind, controls, dead[0].error.split(":")[0]
([('A', 'page_view', 5, 'u1', 'e1', 's1', 1, 0.0)], 'page_view', [], 'invalid_json')
"""

from __future__ import annotations

from features.events import Control, DeadLetter
from features.interactions import UserEvent, item_inputs, user_inputs
from features.native import bespoke_native
from features.validate import RawRecord, validate_record

Ingested = tuple[list[tuple], list[tuple], list[Control], list[DeadLetter]]


def ingest_record(rec: RawRecord, fmt: str = "native") -> Ingested:
    """One record through pydantic validation (the reference path)."""
    events, dead = validate_record(rec, fmt)
    items: list[tuple] = []
    users: list[tuple] = []
    controls: list[Control] = []
    for ev in events:
        items += item_inputs(ev)
        users += user_inputs(ev)
        if type(ev) is Control:
            controls.append(ev)
    return items, users, controls, dead


def ingest(records: list[RawRecord], fmt: str = "native", native: bool = True) -> Ingested:
    """A batch of records; ``native``: use the native fast path where it is built."""
    if native and fmt == "native" and bespoke_native is not None:
        return bespoke_native.ingest(records, ingest_record, UserEvent)
    items: list[tuple] = []
    users: list[tuple] = []
    controls: list[Control] = []
    dead: list[DeadLetter] = []
    for rec in records:
        i, u, c, d = ingest_record(rec, fmt)
        items += i
        users += u
        controls += c
        dead += d
    return items, users, controls, dead
