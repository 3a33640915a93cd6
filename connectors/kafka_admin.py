"""Kafka administration and bulk production helpers (topics, produce-and-confirm)."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.kafka_sink import producer_config


def ensure_topics(brokers: str, topics: dict[str, int], timeout_s: float = 30.0) -> None:
    """Create the topics that do not exist yet (name → partitions); existing ones stay."""
    admin = AdminClient({"bootstrap.servers": brokers})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    new = [NewTopic(t, num_partitions=n, replication_factor=1)
           for t, n in topics.items() if t not in existing]
    if not new:
        return
    for topic, fut in admin.create_topics(new, operation_timeout=timeout_s).items():
        try:
            fut.result(timeout_s)
        except KafkaException as e:
            if e.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise RuntimeError(f"creating topic {topic}: {e}") from e


def produce_all(brokers: str, topic: str, records: Iterable[tuple],
                timeout_s: float = 60.0) -> int:
    """Produce (key, value) or (key, value, event time ms) tuples and wait until every one
    is acknowledged; returns the count. The event time becomes the record's timestamp (the
    Kafka source aligns partitions by it)."""
    errors: list[str] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            errors.append(err.str())

    p = Producer(producer_config(brokers, {"linger.ms": 20}))
    n = 0
    for rec in records:
        key, value = rec[0], rec[1]
        ts = {"timestamp": rec[2]} if len(rec) > 2 and rec[2] else {}
        while True:
            try:
                p.produce(topic, value, key.encode() if key else None, on_delivery=on_delivery,
                          **ts)
                break
            except BufferError:
                p.poll(0.1)
        n += 1
        if n % 10_000 == 0:
            p.poll(0)
    left = p.flush(timeout_s)
    if left or errors:
        raise RuntimeError(f"{left} messages undelivered; errors: {errors[:5]}")
    return n
