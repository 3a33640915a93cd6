"""A caching decorator of the online store's reads (``features.store.OnlineStore``).

Candidate lists, neighbours and item facts change slowly: the agent's tools and policy gate
read store rows through ``CachedRows`` (one round trip per miss, not per decision). The
flow wires it (``flows.main``); the agent only sees a row reader.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from features.store import RowReader, read_groups

log = logging.getLogger(__name__)


class CachedRows:
    """Read-through cache of store rows for ``ttl_s`` seconds (candidate lists, neighbours
    and item facts change slowly: one round trip per miss, not per decision). With
    ``derive``, what is cached and returned is ``derive(row)`` (computed once per miss).
    ``store`` may be another ``CachedRows`` (a derived cache over a shared row cache).
    Missing rows are not cached: an item whose catalog row arrives is seen at once.

    With ``stale_s`` (stale-while-revalidate), a row up to ``stale_s`` past its expiry is
    returned at once and read again by a background thread, several keys per round trip:
    the caller (a worker thread) does not wait for the store for rows it has seen lately.
    A row older than that, or never seen, is read while the caller waits, as without it.

    >>> class Store:
    ...     rows, reads = {"A": {"stock": 1}}, 0
    ...     def read_many(self, entity, keys):
    ...         Store.reads += 1
    ...         return [dict(self.rows[k]) if k in self.rows else None for k in keys]
    >>> now = [0.0]
    >>> c = CachedRows(Store(), ttl_s=1.0, stale_s=1.0, clock=lambda: now[0], background=False)
    >>> c.read_many("item", ["A"]), Store.reads
    ([{'stock': 1}], 1)
    >>> Store.rows["A"] = {"stock": 0}; now[0] = 1.5   # expired, within the stale window
    >>> c.read_many("item", ["A"]), Store.reads        # served at once, queued for refresh
    ([{'stock': 1}], 1)
    >>> c.refresh_pending(), c.read_many("item", ["A"]), Store.reads
    (1, [{'stock': 0}], 2)
    """

    def __init__(self, store: RowReader, ttl_s: float = 1.0, max_keys: int = 100_000,
                 derive: Callable[[dict | None], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic, stale_s: float = 0.0,
                 background: bool = True) -> None:
        self.store, self.ttl, self.max, self.clock = store, ttl_s, max_keys, clock
        self.derive = derive
        self.stale_s = stale_s
        self._rows: dict[str, dict[str, tuple[float, Any]]] = {}  # entity -> key -> (expiry, v)
        self._size = 0
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, None]] = {}  # entity -> keys served stale
        self._inflight: dict[str, dict[str, None]] = {}  # the ones being read again now
        self._background = background  # False: the owner calls refresh_pending (tests)
        self._refresher: threading.Thread | None = None
        self._wake = threading.Event()
        self._failed_at = -1e9

    @property
    def degraded(self) -> bool:
        """The store behind the cache says its last read failed (``ResilientStore``)."""
        return bool(getattr(self.store, "degraded", False))

    def read_many(self, entity: str, keys: list[str]) -> list[Any]:
        return self.read_groups([(entity, keys)])[0]

    def read_groups(self, requests: list[tuple[str, list[str]]]) -> list[list[Any]]:
        """``read_many`` for several entities; the misses of all in one store round trip."""
        now = self.clock()
        stale_until = now - self.stale_s  # rows that expired after this are served stale
        queued = False
        with self._lock:
            outs: list[list[Any]] = []
            fetch: list[tuple[str, dict[str, list[int]]]] = []  # (entity, key -> positions)
            for entity, keys in requests:
                rows = self._rows.get(entity)
                if rows is None:
                    rows = self._rows[entity] = {}
                out: list[Any] = []
                missing: dict[str, list[int]] | None = None
                for k in keys:
                    v = rows.get(k)
                    if v is not None and v[0] > now:
                        out.append(v[1])
                    elif v is not None and v[0] > stale_until:
                        out.append(v[1])
                        if k not in self._inflight.get(entity, ()):
                            self._pending.setdefault(entity, {})[k] = None
                            queued = True
                    else:
                        out.append(None)
                        if missing is None:
                            missing = {}
                        missing.setdefault(k, []).append(len(out) - 1)
                outs.append(out)
                fetch.append((entity, missing or {}))
            if queued and self._background:
                self._kick()
            if any(m for _, m in fetch):
                if self._size > self.max:
                    for d in self._rows.values():
                        d.clear()
                    self._size = 0
                wanted = [(entity, list(m)) for entity, m in fetch if m]
                fresh = iter(read_groups(self.store, wanted))
                for (entity, missing), out in zip(fetch, outs, strict=True):
                    if not missing:
                        continue
                    rows = self._rows[entity]
                    for (k, where), r in zip(missing.items(), next(fresh), strict=True):
                        v = self._keep(rows, k, r, now)
                        for i in where:
                            out[i] = v
        return outs

    def _keep(self, rows: dict[str, tuple[float, Any]], k: str, r: dict | None,
              now: float) -> Any:
        """Cache a row just read (under the lock); what the reader gets for it."""
        v = r if self.derive is None else self.derive(r)
        if r is not None:  # a row not (yet) in the store is read again next time
            if k not in rows:
                self._size += 1
            rows[k] = (now + self.ttl, v)
        elif rows.pop(k, None) is not None:  # gone from the store: not served stale again
            self._size -= 1
        return v

    def refresh_pending(self) -> int:
        """Read the rows served stale since the last call again, in one round trip;
        returns how many were read."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._inflight = pending
        wanted = [(entity, list(keys)) for entity, keys in pending.items() if keys]
        try:
            if not wanted:
                return 0
            fresh = read_groups(self.store, wanted)  # without the lock: readers go on
            now = self.clock()
            with self._lock:
                for (entity, keys), got in zip(wanted, fresh, strict=True):
                    rows = self._rows.setdefault(entity, {})
                    for k, r in zip(keys, got, strict=True):
                        self._keep(rows, k, r, now)
            return sum(len(keys) for _, keys in wanted)
        finally:
            with self._lock:
                self._inflight = {}

    def _kick(self) -> None:
        """Wake the refresher (under the lock), starting it if it is not running."""
        if self._refresher is None:
            self._refresher = threading.Thread(target=self._refresh_loop, daemon=True,
                                               name="cached-rows-refresh")
            self._refresher.start()
        self._wake.set()

    def _refresh_loop(self, idle_exit_s: float = 5.0, gather_s: float = 0.02) -> None:
        while True:
            if not self._wake.wait(idle_exit_s):
                with self._lock:
                    if not self._pending:  # idle: stop (the next stale read restarts it)
                        self._refresher = None
                        return
            # the keys of the next few batches too, in the same round trip: fewer reads
            # (~5 keys each without this), fewer turns of this thread at the GIL
            time.sleep(gather_s)
            self._wake.clear()
            try:
                self.refresh_pending()
            except Exception:  # the rows stay stale until ttl + stale_s, then are read
                now = time.monotonic()  # in the caller's path, where a failure is seen
                if now - self._failed_at > 30:
                    self._failed_at = now
                    log.warning("background refresh of cached store rows failed",
                                exc_info=True)
