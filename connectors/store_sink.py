"""Bytewax sink that applies online-store operations (writes and purges) in batches.

Its items are *chunks* (lists of operations, see ``operators.chunks``): a batch of the flow
reaches the store as it is, without passing Bytewax one operation at a time.

With ``delivery="pipelined"`` a writer thread applies the batches, in order, while the
worker computes the next ones (Redis I/O releases the GIL); the batches that queued up while
it wrote go to the store together, in order, in one round trip; at most ``max_pending``
batches wait, so a slow store still slows the flow down, and a failed write raises at the
next batch or at close. The default, ``batch``, applies each batch before going on. With
``delivery="epoch"`` (``epoch_store_sink``) the writer thread works as in ``pipelined`` and
the sink waits for it to have applied everything when Bytewax snapshots it at the end of an
epoch, before the epoch can commit (``connectors.epoch_sink``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from connectors.epoch_sink import EpochConfirmedSink
from connectors.metrics import metrics
from features.store import OnlineStore, StoreOp


def _count(ops: list[StoreOp], store: OnlineStore) -> None:
    """The store's metrics (``connectors.metrics``), when they are on."""
    m = metrics()
    if m is not None:
        if ops:
            m.store_writes.inc(len(ops))
        m.store_pending.set(getattr(store, "retained", 0))


class _StorePartition(StatelessSinkPartition[list[StoreOp]]):
    def __init__(self, store: OnlineStore) -> None:
        self._store = store

    def write_batch(self, items: list[list[StoreOp]]) -> None:
        ops = items[0] if len(items) == 1 else [op for chunk in items for op in chunk]
        self._store.apply(ops)
        retained: int = getattr(self._store, "retained", 0)
        if retained:  # failed for a moment: try again now
            self._store.flush(2.0)  # type: ignore[attr-defined]
        _count(ops, self._store)

    def close(self) -> None:
        self._store.close()


class StoreWriteFailed(RuntimeError):
    pass


class _PipelinedStorePartition(StatelessSinkPartition[list[StoreOp]]):
    def __init__(self, store: OnlineStore, max_pending: int = 4,
                 confirm_wait_s: float = 2.0) -> None:
        self._store = store
        self._confirm_wait_s = confirm_wait_s
        self._q: queue.Queue[list[StoreOp] | None] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._queued = self._applied = 0  # batches handed to the writer, batches it applied
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="bespoke-store-writer",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        done = False
        while not done:
            ops = self._q.get()
            if ops is None:
                break
            n = 1
            # what queued up meanwhile goes in the same round trip, in order
            while True:
                try:
                    more = self._q.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    done = True
                    break
                ops = ops + more
                n += 1
            try:
                self._store.apply(ops)
                _count(ops, self._store)
            except BaseException as e:  # noqa: BLE001 - raised in the worker, next batch
                self._error = self._error or e
            finally:
                with self._idle:
                    self._applied += n
                    self._idle.notify_all()

    def _check(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise StoreWriteFailed(f"store write failed: {e!r}") from e

    def write_batch(self, items: list[list[StoreOp]]) -> None:
        self._check()
        self._q.put(items[0] if len(items) == 1 else [op for chunk in items for op in chunk])
        self._queued += 1

    def confirm(self) -> None:
        """Wait until every batch written so far is applied; raise if a write failed.

        A store that retains failed writes (``connectors.resilient_store``) is asked to
        apply them now: a write that failed for a moment (a timeout on a large pipeline)
        is applied before the epoch commits, so a committed epoch's writes are in the
        store. Only while the store stays down (``confirm_wait_s``) does the epoch commit
        with writes still retained."""
        with self._idle:
            self._idle.wait_for(lambda: self._applied >= self._queued)
        self._check()
        retained: int = getattr(self._store, "retained", 0)
        if retained:
            self._store.flush(self._confirm_wait_s)  # type: ignore[attr-defined]
        _count([], self._store)

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()
        try:
            self._check()
        finally:
            self._store.close()


class StoreSink(DynamicSink[list[StoreOp]]):
    """``store_factory`` is called once per worker (Redis clients are not shared)."""

    def __init__(self, store_factory: Callable[[], OnlineStore], delivery: str = "batch") -> None:
        """``delivery`` ``batch`` or ``pipelined``; for ``epoch`` see ``epoch_store_sink``."""
        if delivery not in ("batch", "pipelined"):
            raise ValueError("delivery must be 'batch' or 'pipelined'")
        self._factory, self._delivery = store_factory, delivery

    def build(self, step_id: str, worker_index: int,
              worker_count: int) -> StatelessSinkPartition[list[StoreOp]]:
        if self._delivery == "pipelined":
            return _PipelinedStorePartition(self._factory())
        return _StorePartition(self._factory())


def epoch_store_sink(store_factory: Callable[[], OnlineStore]) -> EpochConfirmedSink:
    """``delivery="epoch"``: items are ``(worker partition, chunk of StoreOp)`` from
    ``connectors.epoch_sink.key_by_worker``."""
    return EpochConfirmedSink(lambda: _PipelinedStorePartition(store_factory()))


def _memory_name(url: str) -> str | None:
    """The in-process store's name when ``url`` is ``memory`` or ``memory://name``."""
    if url == "memory":
        return "default"
    return url.removeprefix("memory://") if url.startswith("memory://") else None


def store_factory(url: str, timeout_s: float = 2.0, options: dict | None = None,
                  close_wait_s: float = 30.0) -> Callable[[], OnlineStore]:
    """``memory`` (or ``memory://name``) for the in-process store, ``redis://...`` or
    ``rediss://...`` (TLS) for Redis (behind ``connectors.resilient_store``: an outage
    degrades, never stops the flow; at close, writes it retained wait ``close_wait_s`` for the
    server); ``options``: ``Settings.redis_options()``."""
    name = _memory_name(url)
    if name is not None:
        from connectors.memory_store import MemoryStore

        return lambda: MemoryStore.shared(name)
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        from connectors.redis_store import RedisStore
        from connectors.resilient_store import ResilientStore

        errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
        return lambda: ResilientStore(lambda: RedisStore(url, timeout_s, **(options or {})),
                                      errors, close_wait_s=close_wait_s)
    raise ValueError("store must be 'memory' or a redis:// URL")


def is_remote(url: str) -> bool:
    """Whether reads of the store ``url`` names wait for another process (Redis)."""
    return _memory_name(url) is None
