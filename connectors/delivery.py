"""How outputs are confirmed, per delivery mode (``BESPOKE_DELIVERY``), in one place.

- ``batch``: every output batch is acknowledged by Kafka and written to the store before the
  flow goes on (``CheckedKafkaSink``, ``StoreSink``);
- ``pipelined``: outputs are acknowledged while the flow computes the next batches;
- ``epoch`` (default): as ``pipelined``, and every output of an epoch is acknowledged before
  the epoch can commit (``connectors.epoch_sink``): its sinks take chunks keyed by worker.

Every mode builds the worker index probe before the sinks (``before_sinks``): the epoch
sinks and the JSONL file sink (exactly-once across a crash) key their items by worker.

``delivery(mode)`` gives the object the flow builds its Kafka and store sinks with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import bytewax.operators as op
from bytewax.dataflow import Stream

from connectors.epoch_sink import key_by_worker, worker_index_probe
from connectors.kafka_sink import CheckedKafkaSink, epoch_kafka_sink
from connectors.store_sink import StoreSink, epoch_store_sink
from features.events import Outgoing
from features.store import OnlineStore, StoreOp

MODES = ("batch", "epoch", "pipelined")


class Delivery(Protocol):
    def before_sinks(self, up: Stream) -> None:
        """Called with the input stream before any sink is built."""

    def to_kafka(self, step_id: str, chunks: Stream[list[Outgoing]],
                 items: Callable[[], Stream[Outgoing]], brokers: str,
                 topics: dict[str, str], extra: dict | None = None) -> None:
        """``chunks`` of outgoing events, or ``items()``: the same one by one."""

    def to_store(self, step_id: str, ops: Stream[list[StoreOp]],
                 stores: Callable[[], OnlineStore]) -> None: ...


class _PerBatch:
    def __init__(self, mode: str) -> None:
        self.mode = mode

    def before_sinks(self, up: Stream) -> None:
        worker_index_probe("worker_index", up)  # for the file sink, which keys by worker

    def to_kafka(self, step_id, chunks, items, brokers, topics, extra=None) -> None:
        op.output(step_id, items(), CheckedKafkaSink(brokers, topics, extra,
                                                     delivery=self.mode))

    def to_store(self, step_id, ops, stores) -> None:
        op.output(step_id, ops, StoreSink(stores, self.mode))


class _PerEpoch:
    mode = "epoch"

    def before_sinks(self, up: Stream) -> None:
        worker_index_probe("worker_index", up)  # built before the sinks that need it

    def to_kafka(self, step_id, chunks, items, brokers, topics, extra=None) -> None:
        op.output(step_id, key_by_worker(f"{step_id}_key", chunks),
                  epoch_kafka_sink(brokers, topics, extra))

    def to_store(self, step_id, ops, stores) -> None:
        op.output(step_id, key_by_worker(f"{step_id}_key", ops), epoch_store_sink(stores))


def delivery(mode: str) -> Delivery:
    """The delivery of ``mode``.

    >>> delivery("epoch").mode, delivery("batch").mode
    ('epoch', 'batch')
    """
    if mode not in MODES:
        raise ValueError(f"delivery must be one of {MODES}")
    return _PerEpoch() if mode == "epoch" else _PerBatch(mode)
