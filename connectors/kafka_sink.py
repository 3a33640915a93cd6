"""Kafka sink that checks every delivery report (Bytewax's own KafkaSink does not).

Each batch is produced with an idempotent producer and flushed before ``write_batch``
returns; any failed delivery raises, so the epoch is not committed and recovery replays
it. Messages carry their deterministic id in the ``bsp-id`` header. Keys are partitioned
with murmur2 (the Java client's partitioner), so other Kafka clients agree on placement.
"""

from __future__ import annotations

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from features.events import Outgoing


def producer_config(brokers: str, extra: dict | None = None) -> dict:
    return {
        "bootstrap.servers": brokers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "partitioner": "murmur2_random",
        "message.timeout.ms": 30000,
        **(extra or {}),
    }


class DeliveryFailed(RuntimeError):
    pass


class _CheckedPartition(StatelessSinkPartition[Outgoing]):
    def __init__(self, config: dict, topics: dict[str, str], flush_timeout_s: float) -> None:
        self._producer = Producer(config)
        self._topics = topics
        self._timeout = flush_timeout_s
        self._errors: list[str] = []

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err.str()}")

    def write_batch(self, items: list[Outgoing]) -> None:
        p = self._producer
        for it in items:
            while True:
                try:
                    p.produce(self._topics[it.channel], it.value, it.key,
                              headers=[("bsp-id", it.id.encode())],
                              on_delivery=self._on_delivery)
                    break
                except BufferError:
                    p.poll(0.05)  # local queue full: serve callbacks, then retry
                except KafkaException as e:
                    raise DeliveryFailed(str(e)) from e
        remaining = p.flush(self._timeout)
        if remaining or self._errors:
            errs, self._errors = self._errors[:5], []
            raise DeliveryFailed(f"{remaining} undelivered after {self._timeout}s; errors: {errs}")

    def close(self) -> None:
        self._producer.flush(self._timeout)


class CheckedKafkaSink(DynamicSink[Outgoing]):
    """Writes each item to the topic its channel maps to in ``topics``."""

    def __init__(self, brokers: str, topics: dict[str, str], extra_config: dict | None = None,
                 flush_timeout_s: float = 30.0) -> None:
        self._config = producer_config(brokers, extra_config)
        self._topics = topics
        self._timeout = flush_timeout_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CheckedPartition:
        return _CheckedPartition(dict(self._config), self._topics, self._timeout)
