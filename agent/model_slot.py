"""The scorer's side of a learned model: the snapshot a process ranks with, hot-swapped.

A ``ModelSlot`` reads the model's row from the online store (``agent.learner`` publishes
it; directly, not through the flow's row cache, which would hold it longer) at most every
``refresh_s`` seconds and keeps the newest snapshot that parses; a row
that does not parse (``agent.ranker.parse_snapshot``) is refused and counted, and the last
good snapshot stays. A pinned version (a ``switch_model`` control) is read under
``name@version``. A model serves only once it has learned ``min_examples`` examples;
before that, and when nothing was ever published, ``current`` is None and the heuristic
ranking stands (the named fallback). A version published with a drift alert's id
(``agent.learner``) does not rank either, unless pinned: its ``fallback`` names the alert.

The store is read again after ``refresh_s`` seconds of wall clock *or* of the decisions'
event time, whichever comes first: live, every few seconds; in a replay, where event time
runs far ahead of the clock, as often in event time. Which version ranks a decision then
depends on when the process read the store; the decision record names it.

With ``delay_ms`` (event-time decisions, ``operators.decision_hold``) the slot reads the
fact table for every decision, as of the decision's cut minus ``delay_ms``: the version a
decision ranks with is decided by the input alone (the hold step waits until the learner
has learned everything known before that time).

>>> rows = {"feed_ranker": {"model_v3.version": "feed-ranker-v1.3", "model_v3.examples": 9,
...                         "model_v3.weights": '{"recent": 1.0, "intercept": 0.0}'}}
>>> class Store:
...     def read_many(self, entity, keys): return [rows.get(k) for k in keys]
>>> slot = ModelSlot("feed_ranker", lambda: Store(), refresh_s=0, min_examples=5)
>>> slot.current(None).version
'feed-ranker-v1.3'
>>> rows["feed_ranker"]["model_v3.weights"] = "{not json"     # a corrupt snapshot
>>> slot.current(None).version, slot.refused
('feed-ranker-v1.3', 1)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from agent.ranker import parse_snapshot
from features.definitions import MODEL_VIEW
from features.facts import as_of, cut
from features.store import RowReader

_PREFIX = MODEL_VIEW.store_prefix + "."


class ModelSlot:
    def __init__(self, name: str, reader: Callable[[], RowReader], refresh_s: float = 5.0,
                 min_examples: int = 0, clock: Callable[[], float] = time.monotonic,
                 parse: Callable[[dict[str, Any]], Any] = parse_snapshot,
                 delay_ms: int | None = None, tick_ms: int = 1000) -> None:
        """``parse``: a row's fields to a snapshot (any object with ``examples``; the feed
        ranker's by default, ``agent.offer_bandit.parse_bandit`` for the offer bandit);
        ``delay_ms``: read as of each decision's cut (``tick_ms``) minus this."""
        self.delay_ms, self.tick_ms = delay_ms, tick_ms
        self._parsed: dict[tuple[Any, ...], Any] = {}  # (key, row fields) -> snapshot
        self.name, self.refresh_s, self.min_examples = name, refresh_s, min_examples
        self._parse = parse
        self._reader_factory, self._clock = reader, clock
        self._store: RowReader | None = None  # built on first use, in the worker
        self._snaps: dict[str, Any] = {}  # row key -> last good snapshot
        self._next: dict[str, float] = {}  # row key -> when to read it again
        self._next_ts: dict[str, int] = {}  # row key -> at what event time, at the latest
        self._seen: dict[str, Any] = {}  # row key -> (version, weights, mark) last parsed
        self.refused = 0  # rows that did not parse
        self._lock = threading.Lock()

    def current(self, pinned: str | None, ts: int | None = None) -> Any:
        """The snapshot to rank with: the pinned version, else the newest published
        (``ts``: the decision's event time)."""
        key = f"{self.name}@{pinned}" if pinned else self.name
        if self.delay_ms is not None and ts is not None:
            return self._as_of(key, cut(ts, self.tick_ms) - self.delay_ms)
        now = self._clock()
        if now >= self._next.get(key, 0.0) or (ts is not None
                                                and ts >= self._next_ts.get(key, 0)):
            with self._lock:
                self._next[key] = now + self.refresh_s
                if ts is not None:
                    self._next_ts[key] = ts + int(self.refresh_s * 1000)
                self._read(key)
        snap = self._snaps.get(key)
        return snap if snap is not None and snap.examples >= self.min_examples else None

    def _as_of(self, key: str, t: int) -> Any:
        """The version published before event time ``t`` (None: none, or too young)."""
        try:
            if self._store is None:
                self._store = self._reader_factory()
            with as_of(t):
                (row,) = self._store.read_many("model", [key])
        except Exception:  # noqa: BLE001 - the table does not fail; a store might
            return None
        if not row:
            return None
        seen = (key, row.get(_PREFIX + "version"), row.get(_PREFIX + "weights"),
                row.get(_PREFIX + "fallback"))
        if seen not in self._parsed:
            with self._lock:
                if len(self._parsed) >= 8:
                    self._parsed.clear()
                try:
                    self._parsed[seen] = self._parse({k[len(_PREFIX):]: v
                                                      for k, v in row.items()
                                                      if k.startswith(_PREFIX)})
                except (ValueError, TypeError):
                    self.refused += 1
                    self._parsed[seen] = None
        snap = self._parsed[seen]
        return snap if snap is not None and snap.examples >= self.min_examples else None

    def _read(self, key: str) -> None:
        try:
            if self._store is None:
                self._store = self._reader_factory()
            (row,) = self._store.read_many("model", [key])
        except Exception:  # noqa: BLE001 - an outage: keep ranking with the last good one
            return
        if not row:
            return
        seen = (row.get(_PREFIX + "version"), row.get(_PREFIX + "weights"),
                row.get(_PREFIX + "fallback"))
        if seen == self._seen.get(key):
            return  # unchanged since the last read
        self._seen[key] = seen
        try:
            self._snaps[key] = self._parse({k[len(_PREFIX):]: v for k, v in row.items()
                                               if k.startswith(_PREFIX)})
        except (ValueError, TypeError):
            self.refused += 1
