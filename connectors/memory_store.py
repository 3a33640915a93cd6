"""In-process online store for the embedded mode and tests.

>>> from features.store import StoreWrite
>>> s = MemoryStore()
>>> s.apply([StoreWrite("user", "u1", {"n": 2}, ts=20, ttl_s=0),
...          StoreWrite("user", "u1", {"n": 1}, ts=10, ttl_s=0)])   # older: ignored
>>> s.read_many("user", ["u1", "u2"])
[{'n': 2}, None]
"""

from __future__ import annotations

import threading
import time

from features.store import Fields, StoreOp, StorePurge, StoreWrite

_SHARED: dict[str, MemoryStore] = {}
_LOCK = threading.Lock()


class MemoryStore:
    def __init__(self, clock=time.monotonic) -> None:
        self._data: dict[tuple[str, str], tuple[int, float, Fields]] = {}
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, name: str = "default") -> MemoryStore:
        """One store per name and process, shared by the worker threads of a run."""
        with _LOCK:
            return _SHARED.setdefault(name, cls())

    def apply(self, ops: list[StoreOp]) -> None:
        now = self._clock()
        with self._lock:
            for op in ops:
                k = (op.entity, op.key)
                if isinstance(op, StorePurge):
                    self._data.pop(k, None)
                    continue
                assert isinstance(op, StoreWrite)
                cur = self._data.get(k)
                if cur is not None and cur[1] > now and cur[0] > op.ts:
                    continue
                fields = dict(cur[2]) if cur is not None and cur[1] > now else {}
                fields.update(op.fields)
                expires = now + op.ttl_s if op.ttl_s > 0 else float("inf")
                self._data[k] = (op.ts, expires, fields)

    def read_many(self, entity: str, keys: list[str]) -> list[Fields | None]:
        now = self._clock()
        out: list[Fields | None] = []
        with self._lock:
            for key in keys:
                cur = self._data.get((entity, key))
                out.append(dict(cur[2]) if cur is not None and cur[1] > now else None)
        return out

    def keys(self, entity: str) -> list[str]:
        now = self._clock()
        with self._lock:
            return sorted(k for (e, k), v in self._data.items() if e == entity and v[1] > now)

    def close(self) -> None:
        pass
