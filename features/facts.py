"""Item facts as of an event time: the versioned table decisions read in event time.

A decision made for a trigger at event time ``T`` reads every item and category fact (the
feature views the item and category folds write: catalog, price, stock, popularity,
co-visitation, category lists) as it was at ``cut(T)``, the end of ``T``'s tick: the newest
version of each view whose event time is before the cut and that has not expired by it.
The flow applies the folds' writes to the table before it lets a trigger through
(``operators.decision_hold``), so what a decision sees depends on the input only, not on
thread timing, batching or caches: the same input gives the same decisions.

Each reading thread says which time it reads at (``as_of``); without one it reads the
newest versions. Versions older than the newest one before a horizon are dropped
(``compact``); a resumed run gets the table back from the facts step's snapshots
(``dump``, ``load``).

>>> from features.store import StoreWrite
>>> t = FactTable()
>>> t.apply([StoreWrite("item", "A", "item_price_v1", {"price": 10.0}, ts=1_000, ttl_s=0),
...          StoreWrite("item", "A", "item_price_v1", {"price": 8.0}, ts=5_000, ttl_s=0)])
>>> with as_of(2_000):
...     t.read_many("item", ["A", "B"])
[{'item_price_v1.price': 10.0}, None]
>>> t.read_many("item", ["A"])   # no time given: the newest
[{'item_price_v1.price': 8.0}]
>>> cut(1_234, 1_000)
2000
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from features.store import Fields, StoreOp, StorePurge, StoreWrite

# the entities decisions read facts of (user state travels with the trigger itself; the
# learners' model rows are applied as they are published, operators.decision_hold)
FACT_ENTITIES = frozenset({"item", "category", "model", "trail"})

_LOCAL = threading.local()
_FOREVER = 1 << 62


def cut(ts: int, tick_ms: int) -> int:
    """The first event time after ``ts``'s tick: a decision at ``ts`` sees facts before it."""
    return (ts // tick_ms + 1) * tick_ms


@contextmanager
def as_of(t: int | None) -> Iterator[None]:
    """Reads on this thread see the facts before event time ``t`` (None: the newest)."""
    prev = getattr(_LOCAL, "t", None)
    _LOCAL.t = t
    try:
        yield
    finally:
        _LOCAL.t = prev


def reading_at() -> int | None:
    """The time reads on this thread are made at (``as_of``), if any."""
    return getattr(_LOCAL, "t", None)


class Version(NamedTuple):
    ts: int
    expires: int  # event time the value stops being valid at (ts + ttl)
    fields: Fields  # named <view>.<field>, as a read returns them


def _version(view: str, ts: int, expires: int, fields: Fields) -> Version:
    return Version(ts, expires, {f"{view}.{f}": x for f, x in fields.items()})


class _Key:
    """One entity key: each view's versions (oldest first, their times apart for bisect)
    and the last read's flat form with the range of times it holds for."""

    __slots__ = ("views", "times", "flat", "lo", "hi", "memo")

    def __init__(self) -> None:
        self.views: dict[str, list[Version]] = {}
        self.times: dict[str, list[int]] = {}
        self.flat: Fields | None = None  # what a read at any t with lo < t <= hi gives
        self.lo = 0
        self.hi = -1
        # the rows of the last few combinations of versions read: one combination gives
        # one row object (a derived cache keyed by the row's identity stays valid)
        self.memo: dict[tuple[int, ...], Fields | None] = {}

    def put(self, view: str, v: Version) -> None:
        vs = self.views.get(view)
        if vs is None:
            vs, ts = self.views[view], self.times[view] = [], []
        else:
            ts = self.times[view]
        if not ts or ts[-1] < v.ts:
            vs.append(v)
            ts.append(v.ts)
            if v.ts > self.lo:  # after what the cached read saw: it holds before v.ts
                self.hi = min(self.hi, v.ts)
            else:
                self.hi = -1
            return
        i = bisect.bisect_left(ts, v.ts)
        if i < len(ts) and ts[i] == v.ts:
            vs[i] = v  # a replay of the same version: the same value
            self.memo.clear()  # the replaced version's id may be reused
        else:
            vs.insert(i, v)
            ts.insert(i, v.ts)
        self.hi = -1

    def read(self, t: int | None) -> Fields | None:
        if t is None:  # the newest versions, whatever their age
            out: Fields = {}
            for vs in self.views.values():
                out.update(vs[-1].fields)
            return out or None
        if self.lo < t <= self.hi:
            return self.flat
        picked: list[Version] = []
        lo, hi = -(1 << 62), _FOREVER
        bisect_left = bisect.bisect_left
        for view, vs in self.views.items():
            ts = self.times[view]
            i = bisect_left(ts, t)  # versions before t
            if i < len(ts) and ts[i] < hi:
                hi = ts[i]
            if not i:
                continue
            v = vs[i - 1]
            if v.ts > lo:
                lo = v.ts
            if v.expires >= t:
                if v.expires < hi:
                    hi = v.expires
                picked.append(v)
            elif v.expires > lo:
                lo = v.expires
        key = tuple(id(v) for v in picked)
        row = self.memo.get(key)
        if row is None and key not in self.memo:
            row = {}
            for v in picked:
                row.update(v.fields)
            row = row or None
            if len(self.memo) >= 4:
                self.memo.clear()
            self.memo[key] = row
        self.flat, self.lo, self.hi = row, lo, hi
        return row

    def compact(self, horizon: int) -> int:
        """Drop the versions older than each view's newest one before ``horizon``."""
        dropped = 0
        for view, vs in self.views.items():
            ts = self.times[view]
            i = bisect.bisect_left(ts, horizon)
            if i > 1:
                del vs[:i - 1]
                del ts[:i - 1]
                dropped += i - 1
        if dropped:
            self.hi = -1
            self.memo.clear()  # dropped versions' ids may be reused
        return dropped


class FactTable:
    """Versioned facts of ``FACT_ENTITIES``, shared by the worker threads of a process."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], _Key] = {}
        self._lock = threading.Lock()
        self.versions = 0  # versions held now
        # reads are made at or after this time (``advance``): older versions are dropped
        # as new ones arrive
        self.horizon: int | None = None
        # the cuts of the decisions still to be made (held, or on their way): a read may
        # still come at each of them
        self._pins: dict[str, dict[int, int]] = {}  # pool -> time -> decisions
        self.floor: int | None = None  # every decision at or before this has been pinned
        # how far before its pin a decision may read (a learned model's delay): the
        # horizon stays this far behind the oldest pin
        self.read_back = 0

    def apply(self, ops: list[StoreOp]) -> None:
        with self._lock:
            for op in ops:
                if op.entity not in FACT_ENTITIES:
                    continue
                if isinstance(op, StorePurge):
                    for k in [k for k in self._keys if k[0] == op.entity and (
                            k[1] == op.key or (op.prefix and k[1].startswith(op.key)))]:
                        del self._keys[k]
                    continue
                assert isinstance(op, StoreWrite)
                entry = self._keys.get((op.entity, op.key))
                if entry is None:
                    entry = self._keys[(op.entity, op.key)] = _Key()
                expires = op.ts + op.ttl_s * 1000 if op.ttl_s > 0 else _FOREVER
                entry.put(op.view, _version(op.view, op.ts, expires, op.fields))
                self.versions += 1
                if self.horizon is not None and len(entry.views[op.view]) > 8:
                    self.versions -= entry.compact(self.horizon)

    def read_many(self, entity: str, keys: list[str]) -> list[Fields | None]:
        t = reading_at()
        get = self._keys.get
        with self._lock:
            return [e.read(t) if (e := get((entity, k))) is not None else None for k in keys]

    def read_groups(self, requests: list[tuple[str, list[str]]]) -> list[list[Fields | None]]:
        return [self.read_many(entity, keys) for entity, keys in requests]

    def pin(self, t: int, pool: str = "") -> None:
        """A decision (of ``pool``) will read as of ``t``."""
        with self._lock:
            pins = self._pins.setdefault(pool, {})
            pins[t] = pins.get(t, 0) + 1

    def unpin(self, t: int, pool: str = "") -> None:
        """A decision pinned at ``t`` has read all it will."""
        with self._lock:
            pins = self._pins.get(pool, {})
            left = pins.get(t, 0) - 1
            if left > 0:
                pins[t] = left
            else:
                pins.pop(t, None)

    def pinned(self, pool: str, upto: int | None = None) -> int:
        """Decisions of ``pool`` pinned (at or before ``upto``)."""
        with self._lock:
            pins = self._pins.get(pool, {})
            return sum(n for t, n in pins.items() if upto is None or t <= upto)

    def oldest_pin(self, pool: str = "") -> int | None:
        with self._lock:
            pins = self._pins.get(pool)
            return min(pins) if pins else None

    def oldest_pin_any(self) -> int | None:
        """The oldest pin of any pool."""
        with self._lock:
            least = [min(p) for p in self._pins.values() if p]
            return min(least) if least else None

    def advance(self, floor: int, horizon: int) -> None:
        """Every decision at or before ``floor`` has been pinned; move the horizon up to
        ``horizon``, never past a pinned decision's time."""
        with self._lock:
            if self.floor is None or floor > self.floor:
                self.floor = floor
            least = [min(p) - self.read_back for p in self._pins.values() if p]
            h = min(horizon, *least) if least else horizon
            if self.horizon is None or h > self.horizon:
                self.horizon = h

    def compact(self, horizon: int) -> int:
        """Forget what no read at or after ``horizon`` can see; returns versions dropped."""
        with self._lock:
            dropped = sum(e.compact(horizon) for e in self._keys.values())
            self.versions -= dropped
            return dropped

    def dump(self, keys: set[tuple[str, str]]) -> list[tuple[str, str, dict[str, list[Version]]]]:
        """The versions of ``keys`` (a facts shard's snapshot)."""
        with self._lock:
            return [(entity, key, {v: list(vs) for v, vs in e.views.items()})
                    for entity, key in sorted(keys)
                    if (e := self._keys.get((entity, key))) is not None]

    def load(self, rows: list[tuple[str, str, dict[str, list[Version]]]]) -> None:
        """Put back what ``dump`` gave (a resumed run)."""
        with self._lock:
            for entity, key, views in rows:
                entry = self._keys.get((entity, key))
                if entry is None:
                    entry = self._keys[(entity, key)] = _Key()
                for view, vs in views.items():
                    for v in vs:
                        entry.put(view, Version(*v))
                        self.versions += 1

    def close(self) -> None:
        pass


class DerivedFacts:
    """``derive(row)`` of a fact table's rows, computed once per version read (the policy
    gate's item facts): a reader like the table itself.

    >>> from features.store import StoreWrite
    >>> t = FactTable()
    >>> t.apply([StoreWrite("item", "A", "v", {"stock": 2}, ts=1, ttl_s=0)])
    >>> calls = []
    >>> d = DerivedFacts(t, lambda r: calls.append(1) or (r or {}).get("v.stock"))
    >>> with as_of(10):
    ...     d.read_many("item", ["A"]), d.read_many("item", ["A"]), len(calls)
    ([2], [2], 1)
    """

    def __init__(self, table: FactTable, derive: Any, max_keys: int = 200_000) -> None:
        self.table, self.derive, self.max = table, derive, max_keys
        self._cache: dict[tuple[str, str], tuple[Any, Any]] = {}

    def read_many(self, entity: str, keys: list[str]) -> list[Any]:
        cache, derive = self._cache, self.derive
        out = []
        for k, row in zip(keys, self.table.read_many(entity, keys), strict=True):
            hit = cache.get((entity, k))
            if hit is not None and hit[0] is row:
                out.append(hit[1])
                continue
            d = derive(row)
            if len(cache) >= self.max:
                cache.clear()
            cache[(entity, k)] = (row, d)
            out.append(d)
        return out


class ClockTick(NamedTuple):
    """One input partition's clock after a batch: its newest event time (None before its
    first event), the item inputs of the batch that came later than the decision lateness
    behind it, whether the partition has ended, and whether its source found it silent
    (until its next tick it does not hold decisions back)."""

    part: str
    newest: int | None
    late: int = 0
    end: bool = False
    idle: bool = False
