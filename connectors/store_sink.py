"""Bytewax sink that applies online-store operations (writes and purges) in batches.

Its items are *chunks* (lists of operations, see ``operators.chunks``): a batch of the flow
reaches the store as it is, without passing Bytewax one operation at a time.
"""

from __future__ import annotations

from collections.abc import Callable

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from features.store import OnlineStore, StoreOp


class _StorePartition(StatelessSinkPartition[list[StoreOp]]):
    def __init__(self, store: OnlineStore) -> None:
        self._store = store

    def write_batch(self, items: list[list[StoreOp]]) -> None:
        ops = items[0] if len(items) == 1 else [op for chunk in items for op in chunk]
        self._store.apply(ops)

    def close(self) -> None:
        self._store.close()


class StoreSink(DynamicSink[list[StoreOp]]):
    """``store_factory`` is called once per worker (Redis clients are not shared)."""

    def __init__(self, store_factory: Callable[[], OnlineStore]) -> None:
        self._factory = store_factory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StorePartition:
        return _StorePartition(self._factory())


def store_factory(url: str) -> Callable[[], OnlineStore]:
    """``memory`` (or ``memory://name``) for the in-process store, ``redis://...`` for Redis."""
    if url == "memory" or url.startswith("memory://"):
        from connectors.memory_store import MemoryStore

        name = url.removeprefix("memory://") if url.startswith("memory://") else "default"
        return lambda: MemoryStore.shared(name)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from connectors.redis_store import RedisStore

        return lambda: RedisStore(url)
    raise ValueError("store must be 'memory' or a redis:// URL")
