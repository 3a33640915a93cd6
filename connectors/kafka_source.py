"""Kafka input: each Kafka partition is a Bytewax source partition yielding ``RawRecord``s.

Bytewax assigns partitions itself (no consumer group); offsets live in its recovery store,
so a resumed flow continues exactly where its last finished epoch ended. Consumer errors
become records with ``error`` set (they go to the dead-letter topic), never a crash.

Latency: a partition takes what librdkafka has already fetched in the background without
waiting (``consume(n, 0)``); only when it found nothing does it ask Bytewax not to call it
again for ``idle_wait_s`` (1 ms). Bytewax's own ``KafkaSource`` waits up to 1 ms in every
call, for every partition, busy or not: with 4 partitions per worker that was ~5 ms of
each worker loop under load.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from features.validate import RawRecord


class _Partition(StatefulSourcePartition[RawRecord, int]):
    def __init__(self, config: dict, topic: str, part: int, offset: int, batch_size: int,
                 idle_wait_s: float) -> None:
        self._consumer = Consumer(config)
        self._consumer.assign([TopicPartition(topic, part, offset)])
        self._topic, self._part, self._offset = topic, part, offset
        self._batch, self._idle = batch_size, timedelta(seconds=idle_wait_s)
        self._eof = False
        self._awake: datetime | None = None

    def next_batch(self) -> list[RawRecord]:
        if self._eof:
            raise StopIteration()
        msgs = self._consumer.consume(self._batch, 0)
        if not msgs:
            self._awake = datetime.now(UTC) + self._idle
            return []
        self._awake = None
        out: list[RawRecord] = []
        last = None
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._eof = True  # StopIteration on the next call: this batch goes out
                    break
                out.append(RawRecord(m.topic() or self._topic, max(0, m.partition() or 0),
                                     max(0, m.offset() or 0), m.value(),
                                     max(0, m.timestamp()[1]), error=err.str()))
            else:
                out.append(RawRecord(self._topic, self._part, m.offset(), m.value(),
                                     max(0, m.timestamp()[1])))
            last = m.offset()
        if last is not None and last >= 0:
            self._offset = last + 1  # resume after it, not at it
        return out

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class KafkaRawSource(FixedPartitionedSource[RawRecord, int]):
    """Every partition of ``topics`` from the beginning (or the recovered offset); with
    ``tail`` it keeps waiting for new records, else it ends at the end of each partition."""

    def __init__(self, brokers: str, topics: list[str], tail: bool = True,
                 batch_size: int = 1000, idle_wait_s: float = 0.001,
                 extra_config: dict | None = None) -> None:
        self._brokers, self._topics, self._tail = brokers, list(topics), tail
        self._batch, self._idle = batch_size, idle_wait_s
        self._extra = extra_config or {}

    def list_parts(self) -> list[str]:
        client = AdminClient({"bootstrap.servers": self._brokers, **self._extra})
        parts = []
        for topic in self._topics:  # one by one: topic auto-creation (if on) is respected
            meta = client.list_topics(topic).topics[topic]
            if meta.error is not None:
                raise RuntimeError(f"cannot list partitions of {topic!r}: {meta.error.str()}")
            parts += [f"{i}-{topic}" for i in sorted(meta.partitions)]
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Partition:
        idx, topic = for_part.split("-", 1)
        if topic not in self._topics:
            raise ValueError(f"recovery state is for topic {topic!r}, not among {self._topics}")
        config = {"bootstrap.servers": self._brokers, "group.id": "bespoke-unused",
                  "enable.auto.commit": False, "enable.partition.eof": not self._tail,
                  **self._extra}
        return _Partition(config, topic, int(idx),
                          OFFSET_BEGINNING if resume_state is None else resume_state,
                          self._batch, self._idle)


def kafka_raw_input(step_id: str, flow: Dataflow, brokers: str, topics: list[str],
                    tail: bool = True, batch_size: int = 1000) -> Stream[RawRecord]:
    """Read ``topics`` from the beginning (or the recovered offsets) as ``RawRecord``s."""
    return op.input(f"{step_id}_kafka", flow, KafkaRawSource(brokers, topics, tail, batch_size))
