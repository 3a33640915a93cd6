"""Duplicate event ids at the source: the contract makes ``event_id`` the dedup key.

Each input partition (a Kafka partition, a file) remembers the ids of its last ``capacity``
events; a record whose event id is among them is marked (``RawRecord.error`` =
``duplicate: ...``) and becomes a dead letter with that reason: counted, never folded into
features twice. The remembered ids are part of the partition's snapshot, so a resumed run
skips exactly what an uninterrupted one does. Producers retry into the same partition (same
key), so per-partition memory catches their duplicates. Only Bespoke's own event format
carries producer ids (the dataset formats derive theirs from positions). The ids are
remembered before validation: a record that repeats the id of an earlier, invalid one is a
duplicate too (ids are unique per event, valid or not).

>>> from features.validate import RawRecord
>>> recent = RecentIds(capacity=2)
>>> recs = [RawRecord("t", 0, i, b'{"event_id":"%s"}' % e.encode(), 1)
...         for i, e in enumerate("aab")]
>>> [r.error for r in mark_duplicates(recs, recent)]
[None, 'duplicate: event id a was read before in this partition', None]
>>> recent.snapshot()
['a', 'b']
"""

from __future__ import annotations

from collections import OrderedDict

import orjson

from features.validate import RawRecord


class RecentIds:
    """The last ``capacity`` distinct event ids of one partition, oldest first."""

    def __init__(self, capacity: int, state: list[str] | None = None) -> None:
        self.capacity = capacity
        self.ids: OrderedDict[str, None] = OrderedDict.fromkeys(state or [])

    def seen(self, event_id: str) -> bool:
        """True if ``event_id`` is remembered; else remember it."""
        ids = self.ids
        if event_id in ids:
            return True
        ids[event_id] = None
        if len(ids) > self.capacity:
            ids.popitem(last=False)
        return False

    def snapshot(self) -> list[str]:
        return list(self.ids)


def event_id_of(value: bytes | None) -> str | None:
    """The ``event_id`` of a JSON object record, if it has a non-empty string one."""
    if not value or value[:1] != b"{":
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None  # not JSON: validation makes it a dead letter
    eid = doc.get("event_id") if isinstance(doc, dict) else None
    # only an id the contract accepts (1-128 characters) is a dedup key; a record without
    # one is a dead letter anyway, for its own reason
    return eid if isinstance(eid, str) and 0 < len(eid) <= 128 else None


def mark_duplicates(records: list[RawRecord], recent: RecentIds) -> list[RawRecord]:
    out = []
    for rec in records:
        eid = event_id_of(rec.value) if rec.error is None else None
        if eid is not None and recent.seen(eid):
            rec = rec._replace(error=f"duplicate: event id {eid} was read before in "
                                     f"this partition")
        out.append(rec)
    return out


def split_resume(state) -> tuple[int | None, list[str] | None]:
    """A partition's resume state: ``offset`` (older snapshots) or ``(offset, ids)``."""
    if state is None or isinstance(state, int):
        return state, None
    return state[0], state[1]
