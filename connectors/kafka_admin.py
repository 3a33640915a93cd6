"""Kafka administration and bulk production helpers (topics, produce-and-confirm)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.kafka_sink import producer_config


class KafkaUnreachable(RuntimeError):
    """The brokers refused this client (credentials, TLS) or did not answer."""


def check_kafka(brokers: str, extra: dict | None = None, timeout_s: float = 15.0) -> None:
    """Fail fast, with a message a person can act on, when the brokers refuse the client's
    credentials or certificate, or do not answer within ``timeout_s`` (a Kafka client
    would otherwise retry silently forever). The message never holds a secret.

    >>> try:
    ...     check_kafka("127.0.0.1:1", timeout_s=0.5)
    ... except KafkaUnreachable as e:
    ...     print(str(e)[:54])
    Kafka at 127.0.0.1:1 (PLAINTEXT) did not answer in 0.5
    """
    extra = extra or {}
    errors: list[KafkaError] = []
    config: dict[str, Any] = {"bootstrap.servers": brokers, **extra, "error_cb": errors.append}
    admin = AdminClient(config)
    protocol = extra.get("security.protocol", "PLAINTEXT")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if admin.list_topics(timeout=min(1.0, timeout_s)).brokers:
                return
        except KafkaException:
            pass
        admin.poll(0)  # serves error_cb
        for e in errors:
            if e.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL,
                            KafkaError.SASL_AUTHENTICATION_FAILED):
                who = extra.get("sasl.username")
                raise KafkaUnreachable(
                    f"Kafka at {brokers} refused the connection ({protocol}"
                    f"{', user ' + who if who else ''}): {e.str()}; check "
                    "BESPOKE_KAFKA_SECURITY_PROTOCOL, _SASL_* and _SSL_CA_LOCATION")
        if time.monotonic() > deadline:
            last = f": {errors[-1].str()}" if errors else ""
            raise KafkaUnreachable(f"Kafka at {brokers} ({protocol}) did not answer in "
                                   f"{timeout_s} s{last}")


def partitions_of(brokers: str, topics: list[str], timeout_s: float = 30.0,
                  extra: dict | None = None) -> list[str]:
    """``topic:partition`` of every partition of ``topics`` that exists now."""
    admin = AdminClient({"bootstrap.servers": brokers, **(extra or {})})
    meta = admin.list_topics(timeout=timeout_s).topics
    return [f"{t}:{p}" for t in topics if t in meta for p in sorted(meta[t].partitions)]


def ensure_topics(brokers: str, topics: dict[str, int], timeout_s: float = 30.0,
                  extra: dict | None = None) -> None:
    """Create the topics that do not exist yet (name → partitions); existing ones stay.
    ``extra``: the clients' security settings (``Settings.kafka_security()``)."""
    admin = AdminClient({"bootstrap.servers": brokers, **(extra or {})})
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
                timeout_s: float = 60.0, extra: dict | None = None) -> int:
    """Produce (key, value) or (key, value, event time ms) tuples and wait until every one
    is acknowledged; returns the count. The event time becomes the record's timestamp (the
    Kafka source aligns partitions by it)."""
    errors: list[str] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            errors.append(err.str())

    p = Producer(producer_config(brokers, {"linger.ms": 20, **(extra or {})}))
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
