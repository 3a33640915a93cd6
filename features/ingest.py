"""Raw records → what the feature steps take: item inputs, user inputs, control events and
dead letters, in record order.

The native fast path (``bespoke_native.ingest``, see ``native/src/ingest.rs``) turns the
common events (behaviour, stock, price, consent, plain catalog items) straight into native
input batches (``ItemInBatch``/``UserInBatch``, which the native shards read without a
Python object per event); every record it is not sure of comes here, to ``ingest_record``:
pydantic validation (``validate_record``) and ``item_inputs``/``user_inputs`` tuples. Tests
hold the two paths to the same inputs (``expand`` shows a batch as those tuples).

>>> from features.validate import RawRecord
>>> raw = RawRecord("f", 0, 1, b'{"type":"page_view","event_id":"e1","ts":5,'
...                 b'"user_id":"u1","session_id":"s1","sku":"A"}', 0)
>>> items, users, controls, dead = expand(ingest([raw, raw._replace(value=b"{")]))
>>> items, users[0].kind, controls, dead[0].error.split(":")[0]
([('A', 'page_view', 5, 'u1', 'e1', 's1', 1, 0.0)], 'page_view', [], 'invalid_json')
"""

from __future__ import annotations

from typing import Any

from features.events import Control, DeadLetter
from features.interactions import UserEvent, item_inputs, user_inputs
from features.native import bespoke_native
from features.validate import RawRecord, dead_letter, validate_record

Ingested = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[Control], list[DeadLetter]]


CONTROL_REFUSED = ("control_refused: control events are accepted only on the control topic, "
                   "signed (see policies.control_auth)")


def ingest_record(rec: RawRecord, fmt: str = "native", max_future_ms: int | None = None
                  ) -> Ingested:
    """One record through pydantic validation (the reference path). A control event here,
    on an input of events, is a dead letter: the control plane has its own topic
    (``operators.control``), where each one is authenticated."""
    events, dead = validate_record(rec, fmt, max_future_ms)
    items: list[tuple[Any, ...]] = []
    users: list[tuple[Any, ...]] = []
    for ev in events:
        if type(ev) is Control:
            return [], [], [], [dead_letter(rec, CONTROL_REFUSED)]
        items += item_inputs(ev)
        users += user_inputs(ev)
    return items, users, [], dead


def ingest(records: list[RawRecord], fmt: str = "native", native: bool = True,
           max_future_ms: int | None = None) -> Ingested:
    """A batch of records; ``native``: use the native fast path where it is built;
    ``max_future_ms``: see ``features.validate.validate_record``."""
    if native and fmt == "native" and bespoke_native is not None:
        if max_future_ms is None:
            return bespoke_native.ingest(records, ingest_record)
        return bespoke_native.ingest(records, lambda r: ingest_record(r, fmt, max_future_ms),
                                     max_future_ms)
    items: list[tuple[Any, ...]] = []
    users: list[tuple[Any, ...]] = []
    controls: list[Control] = []
    dead: list[DeadLetter] = []
    for rec in records:
        i, u, c, d = ingest_record(rec, fmt, max_future_ms)
        items += i
        users += u
        controls += c
        dead += d
    return items, users, controls, dead


def expand(result: Ingested) -> Ingested:
    """``ingest``'s output with native input batches shown as the tuples and ``UserEvent``s
    the Python path makes (for tests and inspection)."""
    items, users, controls, dead = result
    flat_items: list[tuple[Any, ...]] = []
    flat_users: list[tuple[Any, ...]] = []
    for x in items:
        flat_items += x.tuples() if type(x) is not tuple else [x]  # type: ignore[attr-defined]
    for x in users:
        flat_users += x.tuples(UserEvent) if not isinstance(x, tuple) else [x]
    return flat_items, flat_users, controls, dead
