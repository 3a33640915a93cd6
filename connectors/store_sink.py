"""Bytewax sink that applies online-store operations (writes and purges) in batches."""

from __future__ import annotations

from collections.abc import Callable

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from features.store import OnlineStore, StoreOp, latest_only


class _StorePartition(StatelessSinkPartition[StoreOp]):
    def __init__(self, store: OnlineStore) -> None:
        self._store = store

    def write_batch(self, items: list[StoreOp]) -> None:
        self._store.apply(latest_only(items))

    def close(self) -> None:
        self._store.close()


class StoreSink(DynamicSink[StoreOp]):
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
