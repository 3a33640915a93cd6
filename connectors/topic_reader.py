"""Output topics read back as lines, for the drift dashboard's live view of a Kafka run.

``TopicReader`` assigns every partition of the given topics (no consumer group: it reads
from the beginning and commits nothing, so any number of dashboards can watch) and, on each
``refresh``, reads what was written since the last one, up to the partitions' ends as they
were when the refresh began (bounded by ``timeout_s``). A topic that does not exist yet is
looked for again on the next refresh. Each channel keeps its newest ``max_lines`` values.

    reader = TopicReader("127.0.0.1:9092", {"drift_alerts": "bespoke.drift_alerts"})
    reader.refresh()
    reader.read("drift_alerts")  # the values, as bytes, oldest first
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec


class TopicReader:
    def __init__(self, brokers: str, topics: dict[str, str], extra: dict | None = None,
                 max_lines: int = 1_000_000) -> None:
        self.topics = dict(topics)  # channel -> topic
        self.channel_of = {t: c for c, t in self.topics.items()}
        self.lines: dict[str, deque[bytes]] = {c: deque(maxlen=max_lines) for c in topics}
        self.admin = AdminClient({"bootstrap.servers": brokers, **(extra or {})})
        self.consumer = Consumer({"bootstrap.servers": brokers, "group.id": "bespoke-dashboard",
                                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                  "enable.partition.eof": False, **(extra or {})})
        self.next_offset: dict[tuple[str, int], int] = {}  # assigned partition -> next offset

    def _assign_new(self, timeout_s: float) -> None:
        md = self.consumer.list_topics(timeout=timeout_s)
        new = [TopicPartition(t, p, 0) for t in self.topics.values() if t in md.topics
               for p in md.topics[t].partitions if (t, p) not in self.next_offset]
        if new:
            for tp in new:
                self.next_offset[(tp.topic, tp.partition)] = 0
            self.consumer.incremental_assign(new)

    def refresh(self, timeout_s: float = 30.0) -> int:
        """Read what arrived since the last refresh; the number of values read."""
        deadline = time.monotonic() + timeout_s
        self._assign_new(timeout_s)
        goal: dict[tuple[str, int], int] = {}
        if self.next_offset:  # every partition's end in one request per broker
            futures = self.admin.list_offsets(
                {TopicPartition(*tp): OffsetSpec.latest() for tp in self.next_offset},
                request_timeout=max(0.5, deadline - time.monotonic()))
            for tp_, fut in futures.items():
                tp = (tp_.topic, tp_.partition)
                try:
                    high = fut.result().offset
                except KafkaException:  # not answered in time: this partition waits a refresh
                    continue
                if high > self.next_offset[tp]:
                    goal[tp] = high
        n = 0
        while goal and time.monotonic() < deadline:
            batch = self.consumer.consume(1000, min(0.5, max(0.0, deadline - time.monotonic())))
            if not batch:  # offsets taken by markers hold no message: ask where we are
                for p in self.consumer.position([TopicPartition(*tp) for tp in goal]):
                    if p.offset >= goal[(p.topic, p.partition)]:
                        del goal[(p.topic, p.partition)]
            for m in batch:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(err.str())
                tp = (str(m.topic()), int(m.partition() or 0))
                self.next_offset[tp] = int(m.offset() or 0) + 1
                value = m.value()
                if value:
                    self.lines[self.channel_of[tp[0]]].append(value)
                    n += 1
                if tp in goal and self.next_offset[tp] >= goal[tp]:
                    del goal[tp]
        return n

    def read(self, channel: str) -> list[bytes]:
        return list(self.lines.get(channel, ()))

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
