"""The scorer's side of a learned model: the snapshot a process ranks with, hot-swapped.

A ``ModelSlot`` reads the model's row from the online store (``agent.learner`` publishes
it) at most every ``refresh_s`` seconds and keeps the newest snapshot that parses; a row
that does not parse (``agent.ranker.parse_snapshot``) is refused and counted, and the last
good snapshot stays. A pinned version (a ``switch_model`` control) is read under
``name@version``. A model serves only once it has learned ``min_examples`` examples;
before that, and when nothing was ever published, ``current`` is None and the heuristic
ranking stands (the named fallback).

The refresh is on the wall clock (like the row caches): which version ranks a decision
depends on when the process read the store, and the decision record names it.

>>> rows = {"feed_ranker": {"model_v1.version": "feed-ranker-v1.3", "model_v1.examples": 9,
...                         "model_v1.weights": '{"recent": 1.0, "intercept": 0.0}'}}
>>> class Store:
...     def read_many(self, entity, keys): return [rows.get(k) for k in keys]
>>> slot = ModelSlot("feed_ranker", lambda: Store(), refresh_s=0, min_examples=5)
>>> slot.current(None).version
'feed-ranker-v1.3'
>>> rows["feed_ranker"]["model_v1.weights"] = "{not json"     # a corrupt snapshot
>>> slot.current(None).version, slot.refused
('feed-ranker-v1.3', 1)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from agent.ranker import ModelSnapshot, parse_snapshot
from features.definitions import MODEL_VIEW
from features.store import RowReader

_PREFIX = MODEL_VIEW.store_prefix + "."


class ModelSlot:
    def __init__(self, name: str, reader: Callable[[], RowReader], refresh_s: float = 5.0,
                 min_examples: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.refresh_s, self.min_examples = name, refresh_s, min_examples
        self._reader, self._clock = reader, clock
        self._snaps: dict[str, ModelSnapshot] = {}  # row key -> last good snapshot
        self._next: dict[str, float] = {}  # row key -> when to read it again
        self._seen: dict[str, Any] = {}  # row key -> (version, weights) last parsed
        self.refused = 0  # rows that did not parse
        self._lock = threading.Lock()

    def current(self, pinned: str | None) -> ModelSnapshot | None:
        """The snapshot to rank with: the pinned version, else the newest published."""
        key = f"{self.name}@{pinned}" if pinned else self.name
        now = self._clock()
        if now >= self._next.get(key, 0.0):
            with self._lock:
                if now >= self._next.get(key, 0.0):
                    self._next[key] = now + self.refresh_s
                    self._read(key)
        snap = self._snaps.get(key)
        return snap if snap is not None and snap.examples >= self.min_examples else None

    def _read(self, key: str) -> None:
        try:
            (row,) = self._reader().read_many("model", [key])
        except Exception:  # noqa: BLE001 - an outage: keep ranking with the last good one
            return
        if not row:
            return
        seen = (row.get(_PREFIX + "version"), row.get(_PREFIX + "weights"))
        if seen == self._seen.get(key):
            return  # unchanged since the last read
        self._seen[key] = seen
        try:
            self._snaps[key] = parse_snapshot({k[len(_PREFIX):]: v for k, v in row.items()
                                               if k.startswith(_PREFIX)})
        except (ValueError, TypeError):
            self.refused += 1
