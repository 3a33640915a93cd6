"""Outputs confirmed once per epoch, on the worker that made them.

``BESPOKE_DELIVERY=epoch``: a worker hands its outputs to Kafka (or its store writes to the
store's writer thread) without waiting, and waits for all of them to be acknowledged only
when Bytewax snapshots the sink at the end of each epoch. Bytewax commits an epoch after
every step's snapshot for it is written, so a committed epoch's outputs have all been
delivered (the guarantee of ``batch``), while the worker no longer idles for a broker round
trip per batch (the latency of ``pipelined``).

Bytewax snapshots only a ``FixedPartitionedSink``; its items go to the worker that owns
their partition. Here every worker owns one partition, ``w<worker index>``, and every
item is keyed with the partition of the worker that made it, so nothing crosses workers
and a worker's outputs keep their order. The worker index is learnt when the flow is
built: ``worker_index_probe`` is a sink whose ``build`` Bytewax calls with the index, in
the worker's thread, before the partitioned sinks list their partitions. (Bytewax worker
threads do not keep ``threading.local`` values between calls into Python, so the index is
kept per thread id.)

A resumed flow may have fewer workers than the run that wrote its recovery state; worker
0 then also owns the partitions of the missing workers (``MAX_WORKERS`` in all), which are
never written to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)

from connectors.metrics import metrics

MAX_WORKERS = 1024
_WORKERS: dict[int, tuple[int, int]] = {}  # thread id -> (worker index, worker count)
_LOCK = threading.Lock()


def part_name(worker: int) -> str:
    """The sink partition a worker owns; sorted, they follow the worker indexes.

    >>> part_name(3)
    'w00003'
    """
    return f"w{worker:05d}"


def current_worker() -> tuple[int, int]:
    """(index, count) of the Bytewax worker running in this thread."""
    try:
        return _WORKERS[threading.get_ident()]
    except KeyError:
        raise RuntimeError("no worker index for this thread: add worker_index_probe(...) "
                           "to the flow before any epoch-confirmed sink") from None


class _Nothing(StatelessSinkPartition[Any]):
    def write_batch(self, items: list) -> None:
        pass


class _WorkerIndexProbe(DynamicSink[Any]):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Nothing:
        with _LOCK:
            _WORKERS[threading.get_ident()] = (worker_index, worker_count)
        return _Nothing()


def worker_index_probe(step_id: str, up: Stream) -> None:
    """Record each worker's index for the epoch-confirmed sinks declared after it (``up``
    can be any stream: none of its items reach the probe)."""
    op.output(step_id, op.flat_map_batch(f"{step_id}_none", up, lambda _: []),
              _WorkerIndexProbe())


def key_by_worker(step_id: str, up: Stream) -> Stream:
    """Each item ``x`` becomes ``(partition of this worker, x)``."""
    def keyed(batch: list) -> list:
        home = part_name(current_worker()[0])
        return [(home, x) for x in batch]

    return op.flat_map_batch(step_id, up, keyed)


class Writer(Protocol):
    """What an epoch-confirmed sink drives: ``write`` without waiting for the outside
    world, ``confirm`` waits until everything written is acknowledged (raises if any of it
    failed), ``close`` confirms and releases."""

    def write_batch(self, items: list) -> None: ...

    def confirm(self) -> None: ...

    def close(self) -> None: ...


class _Partition(StatefulSinkPartition[Any, None]):
    def __init__(self, make: Callable[[], Writer], step_id: str = "sink") -> None:
        self._make, self._step = make, step_id
        self._writer: Writer | None = None  # made on first write (never, for an orphan)

    def write_batch(self, values: list) -> None:
        if self._writer is None:
            self._writer = self._make()
        self._writer.write_batch(values)

    def snapshot(self) -> None:
        if self._writer is not None:
            t0 = time.perf_counter()
            self._writer.confirm()  # before Bytewax can commit this epoch
            meter = metrics()
            if meter is not None:  # how long the epoch's end waited for its outputs
                meter.observe_epoch(self._step, time.perf_counter() - t0)
        return None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class EpochConfirmedSink(FixedPartitionedSink[Any, None]):
    """Items ``(part_name(worker), value)`` from ``key_by_worker``; ``make_writer()`` is
    called once per worker that writes."""

    def __init__(self, make_writer: Callable[[], Writer]) -> None:
        self._make = make_writer

    def list_parts(self) -> list[str]:
        index, count = current_worker()
        orphans = range(count, MAX_WORKERS) if index == 0 else ()
        return [part_name(index)] + [part_name(i) for i in orphans]

    def part_fn(self, item_key: str) -> int:
        return int(item_key[1:])  # the sorted partitions are w00000, w00001, ...

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _Partition:
        return _Partition(self._make, step_id.rsplit(".", 1)[-1])  # "bespoke.sink" -> "sink"
