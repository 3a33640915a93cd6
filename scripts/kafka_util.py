"""Read whole topics in tests (assign all partitions, stop at their ends)."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, TopicPartition


def consume_all(bootstrap: str, topic: str, timeout_s: float = 30.0,
                extra: dict | None = None) -> list:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bespoke-tests",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "auto.offset.reset": "earliest", **(extra or {})})
    try:
        md = c.list_topics(topic, timeout=10)
        parts = list(md.topics[topic].partitions)
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        done: set[int] = set()
        out = []
        deadline = time.monotonic() + timeout_s
        while len(done) < len(parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: {len(done)}/{len(parts)} partitions done")
            for m in c.consume(1000, 0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        done.add(m.partition())
                        continue
                    raise RuntimeError(m.error().str())
                out.append(m)
        return out
    finally:
        c.close()
