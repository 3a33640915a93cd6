"""In-process online store for the embedded mode and tests (same semantics as Redis).

>>> from features.store import StoreWrite
>>> s = MemoryStore()
>>> s.apply([StoreWrite("user", "u1", "a", {"n": 2}, ts=20, ttl_s=0),
...          StoreWrite("user", "u1", "a", {"n": 1}, ts=10, ttl_s=0),   # older: ignored
...          StoreWrite("user", "u1", "b", {"m": 1}, ts=10, ttl_s=0)])   # other view: kept
>>> s.read_many("user", ["u1", "u2"])
[{'a.n': 2, 'b.m': 1}, None]
"""

from __future__ import annotations

import threading
import time

from features.store import Fields, StoreOp, StorePurge, StoreWrite

_SHARED: dict[str, MemoryStore] = {}
_LOCK = threading.Lock()


class _Entry:
    """One key: per view its event time and fields (a view always writes all its fields);
    the flat ``<view>.<field>`` form is built when read, and kept until the next write."""

    __slots__ = ("expires", "flat", "views")

    def __init__(self) -> None:
        self.expires = 0.0
        self.views: dict[str, tuple[int, Fields]] = {}
        self.flat: Fields | None = None

    def fields(self) -> Fields:
        if self.flat is None:
            self.flat = {f"{view}.{f}": v for view, (_, fields) in self.views.items()
                         for f, v in fields.items()}
        return self.flat


class MemoryStore:
    def __init__(self, clock=time.monotonic) -> None:
        self._data: dict[tuple[str, str], _Entry] = {}
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, name: str = "default") -> MemoryStore:
        """One store per name and process, shared by the worker threads of a run."""
        with _LOCK:
            return _SHARED.setdefault(name, cls())

    @classmethod
    def drop(cls, name: str) -> None:
        """Forget a shared store (benchmarks and tests that make many)."""
        with _LOCK:
            _SHARED.pop(name, None)

    def apply(self, ops: list[StoreOp]) -> None:
        now = self._clock()
        with self._lock:
            for op in ops:
                k = (op.entity, op.key)
                if isinstance(op, StorePurge):
                    if op.prefix:
                        for key in [key for key in self._data
                                    if key[0] == op.entity and key[1].startswith(op.key)]:
                            del self._data[key]
                    else:
                        self._data.pop(k, None)
                    continue
                assert isinstance(op, StoreWrite)
                e = self._data.get(k)
                if e is None or e.expires <= now:
                    e = self._data[k] = _Entry()
                cur = e.views.get(op.view)
                if cur is not None and cur[0] > op.ts:
                    continue
                e.views[op.view] = (op.ts, op.fields)
                e.flat = None
                expires = now + op.ttl_s if op.ttl_s > 0 else float("inf")
                e.expires = max(e.expires, expires)

    def read_many(self, entity: str, keys: list[str]) -> list[Fields | None]:
        now = self._clock()
        out: list[Fields | None] = []
        with self._lock:
            for key in keys:
                e = self._data.get((entity, key))
                out.append(dict(e.fields()) if e is not None and e.expires > now else None)
        return out

    def keys(self, entity: str) -> list[str]:
        now = self._clock()
        with self._lock:
            return sorted(k for (ent, k), e in self._data.items()
                          if ent == entity and e.expires > now)

    def close(self) -> None:
        pass
