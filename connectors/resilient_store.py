"""An online store that an outage of its server degrades but never stops.

``ResilientStore`` wraps a remote store (Redis) behind a circuit breaker (``_Breaker``; not
pybreaker's, which holds one lock for the whole protected call, so the worker's reads
would wait for the background cache refresher's):

- **reads** that fail (connection refused, reset, a timeout: every call has one) or meet an
  open breaker return "absent" rows at once, so decisions fall back to their declared
  defaults and say so (``degraded`` is true until a read succeeds again);
- **writes** that fail are retained in memory, collapsed newest-wins per (entity, key,
  view) with purges kept in order (``features.store.latest_only``: the store's own rule,
  so applying them late is safe), and applied before the next batch once the server is
  back; at most ``max_retained`` operations are kept (the oldest go first, counted in
  ``dropped`` and logged);
- connecting is lazy and retried: a server that is down when the flow starts is a degraded
  start, not a crash.

The epoch-confirmed sink asks for the retained writes again before an epoch commits
(``flush``), so a write that failed for a moment is in the store before its epoch commits.
What is not covered: while the store stays down, epochs commit with writes retained in the
worker's memory, so a crash *during* an outage loses them (the keys are written again when
their entities next change); at the end of a finite run, ``close`` waits up to
``close_wait_s`` for the server to take them.

>>> class Down:
...     def apply(self, ops): raise ConnectionError("down")
...     def read_many(self, entity, keys): raise ConnectionError("down")
...     def close(self): pass
>>> from features.store import StoreWrite
>>> s = ResilientStore(lambda: Down(), errors=(ConnectionError,))
>>> s.apply([StoreWrite("user", "u1", "v1", {"n": 1}, 5, 0)])
>>> s.read_many("user", ["u1"]), s.degraded, s.retained
([None], True, 1)
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from connectors.metrics import metrics
from features.store import OnlineStore, StoreOp, latest_only

log = logging.getLogger("bespoke.store")


class ResilientStore:
    def __init__(self, connect: Callable[[], OnlineStore], errors: tuple[type, ...],
                 fail_max: int = 3, reset_s: float = 2.0, max_retained: int = 1_000_000,
                 name: str = "store", close_wait_s: float = 30.0) -> None:
        self._connect = connect
        self._errors = errors
        self._store: OnlineStore | None = None
        self._breaker = _Breaker(fail_max, reset_s)
        self._retained: list[StoreOp] = []
        self._lock = threading.Lock()  # the writer thread and the workers' reads share it
        self.max_retained = max_retained
        self.close_wait_s = close_wait_s
        self.degraded = False
        self.read_failures = 0
        self.write_failures = 0
        self.dropped = 0

    # ------------------------------------------------------------------ plumbing
    def _call(self, fn: Callable[[OnlineStore], object]):
        if not self._breaker.allow():
            raise BreakerOpen("store breaker open")
        try:
            if self._store is None:
                self._store = self._connect()
            out = fn(self._store)
        except Exception as e:
            if isinstance(e, self._errors):
                self._breaker.failed()
            raise
        self._breaker.succeeded()
        return out

    def _failed(self, e: BaseException) -> bool:
        return isinstance(e, (BreakerOpen, *self._errors))

    @property
    def breaker_state(self) -> str:
        return self._breaker.state()

    @property
    def retained(self) -> int:
        return len(self._retained)

    # ------------------------------------------------------------------ reads
    def read_many(self, entity: str, keys: list[str]) -> list:
        try:
            rows = self._call(lambda s: s.read_many(entity, keys))
        except Exception as e:
            if not self._failed(e):
                raise
            self.read_failures += 1
            self.degraded = True
            return [None] * len(keys)
        self.degraded = False
        return rows  # type: ignore[return-value]

    def read_groups(self, requests: list[tuple[str, list[str]]]) -> list[list]:
        from features.store import read_groups

        try:
            rows = self._call(lambda s: read_groups(s, requests))
        except Exception as e:
            if not self._failed(e):
                raise
            self.read_failures += 1
            self.degraded = True
            return [[None] * len(keys) for _, keys in requests]
        self.degraded = False
        return rows  # type: ignore[return-value]

    # ------------------------------------------------------------------ writes
    def apply(self, ops: list[StoreOp]) -> None:
        with self._lock:
            pending = self._retained + list(ops) if self._retained else list(ops)
            if not pending:
                return
            try:
                self._call(lambda s: s.apply(pending))
            except Exception as e:
                if not self._failed(e):
                    raise
                self.write_failures += 1
                if (m := metrics()) is not None:
                    m.store_failures.inc()
                if not self._retained:
                    log.warning("store unavailable (%s): retaining writes until it is back",
                                type(e).__name__)
                self._retain(pending)
                return
            if self._retained:
                log.warning("store back: %d retained operations applied", len(self._retained))
                self._retained = []

    def _retain(self, ops: list[StoreOp]) -> None:
        kept = latest_only(ops)
        over = len(kept) - self.max_retained
        if over > 0:
            self.dropped += over
            log.error("store unavailable: %d retained operations dropped (oldest first)", over)
            kept = kept[over:]
        self._retained = kept

    def flush(self, deadline_s: float = 5.0) -> bool:
        """Try to apply what is retained until ``deadline_s`` passes; True when none is left."""
        end = time.monotonic() + deadline_s
        while self._retained and time.monotonic() < end:
            self.apply([])
            if self._retained:
                time.sleep(0.2)
        return not self._retained

    def close(self) -> None:
        if self._retained and not self.flush(self.close_wait_s):
            log.error("store unavailable at close: %d retained operations not applied",
                      len(self._retained))
        if self._store is not None:
            with contextlib.suppress(Exception):  # closing a dead connection
                self._store.close()


class BreakerOpen(RuntimeError):
    pass


class _Breaker:
    """Closed until ``fail_max`` failures in a row; then open for ``reset_s`` seconds; then
    one trial call at a time (half open) closes it again on success. Its lock guards only
    its own counters, never the call it protects (several threads call the store at once).
    """

    def __init__(self, fail_max: int, reset_s: float) -> None:
        self.fail_max, self.reset_s = fail_max, reset_s
        self.failures = 0
        self.opened_at: float | None = None
        self.trial = False
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            if self.opened_at is None:
                return True
            if self.trial or time.monotonic() - self.opened_at < self.reset_s:
                return False
            self.trial = True  # half open: this caller tries
            return True

    def succeeded(self) -> None:
        with self._lock:
            self.failures, self.opened_at, self.trial = 0, None, False

    def failed(self) -> None:
        with self._lock:
            self.failures += 1
            if self.trial or self.failures >= self.fail_max:
                self.opened_at, self.trial = time.monotonic(), False

    def state(self) -> str:
        with self._lock:
            return "closed" if self.opened_at is None else (
                "half_open" if self.trial else "open")
