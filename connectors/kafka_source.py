"""Kafka input: each Kafka partition is a Bytewax source partition yielding ``RawRecord``s.

Bytewax assigns partitions itself (no consumer group); offsets live in its recovery store,
so a resumed flow continues exactly where its last finished epoch ended. Consumer errors
become records with ``error`` set (they go to the dead-letter topic), never a crash.

Latency: a partition takes what librdkafka has already fetched in the background without
waiting (``consume(n, 0)``); only when it found nothing does it ask Bytewax not to call it
again for ``idle_wait_s`` (1 ms). Bytewax's own ``KafkaSource`` waits up to 1 ms in every
call, for every partition, busy or not: with 4 partitions per worker that was ~5 ms of
each worker loop under load.

Batches: the partitions a worker reads share one consumer (``_WorkerConsumer``), and a
partition's ``next_batch`` returns what has arrived for *any* of them, so live traffic
enters the flow as one batch per worker loop rather than one small batch per partition
(every batch costs each step of the flow a call: with 4 partitions at a few events per
batch that fixed cost was most of the work). Offsets are still kept per partition: each
partition's snapshot is the position after the last record of it that went out, whichever
partition's call emitted it, and all of them go out in the same worker and epoch.

Event-time alignment on catch-up (on by default): while the partitions one worker reads
still hold the backlog they had when the source started (after downtime, a pre-filled
topic), they are merged by their records' Kafka timestamps, as a stream processor merges
inputs by watermark. A record goes out only when every other partition of the worker has a
later record waiting or has read its backlog (or, its backlog unknown, has been silent for
``idle_s``). A fast partition therefore cannot run hours ahead of a slow one and push
entities' watermarks past the slow one's events (which would then be "late"), and a
pre-filled topic is read in the same order on every run. Once every backlog is read, the
source emits records as they come (live, nothing waits; a lag that builds up later is not
aligned). Producers should set the
record timestamp to the event time (``produce_all`` and ``generate --out kafka`` do; a live
producer's create time is close to it). At most ``max_buffered`` records wait per worker; past
that the oldest goes out anyway (a partition that cannot be fetched does not stop the flow).
The alignment is per worker: workers of a cluster read their partitions independently.

Duplicates: with ``dedup_ids`` each partition remembers its last event ids (in its
snapshot) and marks a repeated one (``connectors.dedup``).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from connectors.dedup import RecentIds, mark_duplicates, split_resume
from connectors.linger import Linger
from connectors.metrics import Metrics, metrics
from features.validate import END_OF_PARTITION, IDLE_PARTITION, RawRecord


class _WorkerConsumer:
    """One consumer for every partition one worker reads, with their positions."""

    def __init__(self, config: dict, owner: int, align: bool = True, idle_s: float = 1.0,
                 max_buffered: int = 200_000, dedup_ids: int = 0) -> None:
        self.owner = owner  # the worker thread it serves
        self.consumer = Consumer(config)
        self.offsets: dict[tuple[str, int], int] = {}  # next offset to emit, per partition
        self.ended: set[tuple[str, int]] = set()  # partitions at their end (not tailing)
        self.first_topic = ""  # names the source of a consumer error without a topic
        # event-time alignment: records fetched but not yet emitted, per partition
        self.align, self.idle_s, self.max_buffered = align, idle_s, max_buffered
        self.buffers: dict[tuple[str, int], deque[RawRecord]] = {}
        self.fetched: dict[tuple[str, int], int] = {}  # next offset to fetch
        self.heard: dict[tuple[str, int], float] = {}  # monotonic time of its last record
        self.backlog_end: dict[tuple[str, int], int] = {}  # high watermark when assigned
        self.backlog_start: dict[tuple[str, int], int] = {}  # its low watermark then
        self.buffered = 0
        self.overflows = 0  # records emitted out of alignment because the buffer was full
        self.dedup_ids = dedup_ids
        self.recent: dict[tuple[str, int], RecentIds] = {}
        self.lag_reported = 0.0  # monotonic time the lag was last reported (metrics)
        # the flow's input clock (operators.decision_hold) is told when a partition ends
        # and when it falls silent, in the stream itself, after its last record
        self.said_end: set[tuple[str, int]] = set()
        self.said_idle: set[tuple[str, int]] = set()

    def add(self, topic: str, part: int, offset: int, ids: list[str] | None = None,
            backlog: tuple[int, int] = (-1, -1)) -> None:
        self.consumer.incremental_assign([TopicPartition(topic, part, offset)])
        if self.dedup_ids:
            self.recent[(topic, part)] = RecentIds(self.dedup_ids, ids)
        self.offsets[(topic, part)] = offset
        self.buffers[(topic, part)] = deque()
        self.fetched[(topic, part)] = offset
        self.heard[(topic, part)] = time.monotonic()
        # what there was to read at the start: a partition with a backlog is never idle
        self.backlog_start[(topic, part)], self.backlog_end[(topic, part)] = backlog
        self.first_topic = self.first_topic or topic

    def drained(self, key: tuple[str, int]) -> bool:
        """At its end and every record of it emitted."""
        return key in self.ended and not self.buffers.get(key)

    def remove(self, topic: str, part: int) -> bool:
        """Stop reading a partition; True when none is left (the consumer is closed)."""
        if (topic, part) not in self.ended:
            self.consumer.incremental_unassign([TopicPartition(topic, part)])
        del self.offsets[(topic, part)]
        self.buffered -= len(self.buffers.pop((topic, part), ()))
        self.fetched.pop((topic, part), None)
        self.heard.pop((topic, part), None)
        self.backlog_end.pop((topic, part), None)
        self.backlog_start.pop((topic, part), None)
        self.recent.pop((topic, part), None)
        self.ended.discard((topic, part))
        self.said_end.discard((topic, part))
        self.said_idle.discard((topic, part))
        if not self.offsets:
            self.consumer.close()
            return True
        return False

    def take(self, n: int) -> list[RawRecord]:
        """Up to ``n`` records of any partition, without waiting."""
        msgs = self.consumer.consume(n, 0)
        out: list[RawRecord] = []
        offsets, ended = self.offsets, self.ended
        for m in msgs:
            topic, part = m.topic() or self.first_topic, m.partition() or 0
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    if (topic, part) in offsets:
                        ended.add((topic, part))  # it stops; nothing more of it is read
                        self.consumer.incremental_unassign([TopicPartition(topic, part)])
                    continue
                out.append(RawRecord(topic, max(0, part), max(0, m.offset() or 0),
                                     m.value(), max(0, m.timestamp()[1]), error=err.str()))
                continue
            key = (topic, part)
            if key in ended or key not in offsets:
                continue  # fetched before the partition stopped: read again on resume
            off = m.offset() or 0
            rec = RawRecord(topic, part, off, m.value(), max(0, m.timestamp()[1]))
            if self.align:
                self.buffers[key].append(rec)
                self.fetched[key] = off + 1
                self.buffered += 1
                continue
            out.append(rec)
            offsets[key] = off + 1  # resume after it, not at it
        now = time.monotonic()
        for m in msgs:
            if m.error() is None:
                key = (m.topic() or self.first_topic, m.partition() or 0)
                self.heard[key] = now
                self.said_idle.discard(key)
        if self.align:
            if self._caught_up():  # live from here: what is buffered goes, in order
                self.align = False
                out += self._merge(self.buffered, wait=False)
            elif self.buffered:
                out += self._merge(n)
        if self.dedup_ids and out:
            out = self._dedup(out)
        out += self._markers(now)
        if (meter := metrics()) is not None:
            self._report_lag(meter)
        return out

    def _markers(self, now: float) -> list[RawRecord]:
        """An end marker for each partition at its end with nothing left to emit, an idle
        marker for each one silent for ``idle_s`` with nothing buffered (once per silence)."""
        out = []
        for key, off in self.offsets.items():
            if self.buffers.get(key):
                continue
            if key in self.ended:
                if key not in self.said_end:
                    self.said_end.add(key)
                    out.append(RawRecord(key[0], key[1], off, None, 0, END_OF_PARTITION))
            elif key not in self.said_idle and now - self.heard.get(key, now) > self.idle_s:
                end = self.backlog_end.get(key, -1)
                pos = max(off, self.fetched.get(key, -1))
                if pos < 0:  # not read yet: where it starts
                    pos = self.backlog_start.get(key, 0)
                if end >= 0 and pos < end:
                    continue  # its backlog is still to come: slow, not silent
                self.said_idle.add(key)
                out.append(RawRecord(key[0], key[1], off, None, 0, IDLE_PARTITION))
        return out

    def _report_lag(self, m: Metrics) -> None:
        """Each partition's lag (cached high watermark - next offset), once a second; until
        the client has cached a watermark, at every poll (a short run still reports one)."""
        now = time.monotonic()
        if now - self.lag_reported < 1.0:
            return
        for (topic, part), off in self.offsets.items():
            try:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, part),
                                                              timeout=0.1, cached=True)
            except Exception:  # noqa: BLE001 - a metric, never a failure of the flow
                continue
            if high is not None and high >= 0:
                m.consumer_lag.labels(topic, str(part)).set(max(0, high - off))
                self.lag_reported = now

    def _dedup(self, records: list[RawRecord]) -> list[RawRecord]:
        out: list[RawRecord] = []
        for rec in records:
            recent = self.recent.get((rec.source, rec.partition))
            out += mark_duplicates([rec], recent) if recent is not None else [rec]
        return out

    def snapshot(self, key: tuple[str, int]):
        """A partition's resume state: its offset, with its recent event ids if deduping."""
        recent = self.recent.get(key)
        off = self.offsets[key]
        return off if recent is None else (off, recent.snapshot())

    def _settled(self, key: tuple[str, int], now: float) -> bool:
        """Nothing more of ``key``'s backlog to wait for: at its end, or read up to the
        high watermark it had when the source started, or (that unknown) silent for
        ``idle_s``. What arrives after that is live, not backlog."""
        if key in self.ended:
            return True
        end = self.backlog_end[key]
        if end < 0:
            return now - self.heard[key] > self.idle_s
        pos = self.fetched[key]
        return (pos if pos >= 0 else self.backlog_start[key]) >= end

    def _caught_up(self) -> bool:
        """Every partition has read the backlog it had at the start: alignment ends."""
        now = time.monotonic()
        return all(self._settled(k, now) for k in self.offsets)

    def _merge(self, n: int, wait: bool = True) -> list[RawRecord]:
        """Up to ``n`` buffered records in timestamp order, as far as every partition of
        the worker allows (see the module's docstring); all of them with ``wait=False``."""
        buffers, now = self.buffers, time.monotonic()
        heap = [(b[0].received_ts, k) for k, b in buffers.items() if b]
        heapq.heapify(heap)
        waiting = {k for k, b in buffers.items()
                   if wait and not b and not self._settled(k, now)}
        out: list[RawRecord] = []
        while heap and len(out) < n:
            if waiting and self.buffered < self.max_buffered:
                break  # a partition may still bring an earlier record
            if waiting:
                self.overflows += 1
            _, key = heapq.heappop(heap)
            buf = buffers[key]
            rec = buf.popleft()
            self.buffered -= 1
            self.offsets[key] = rec.offset + 1  # resume after it, not at it
            out.append(rec)
            if buf:
                heapq.heappush(heap, (buf[0].received_ts, key))
            elif wait and not self._settled(key, now):
                waiting.add(key)
        return out


class _Partition(StatefulSourcePartition[RawRecord, int]):
    def __init__(self, shared: _WorkerConsumer, release, topic: str, part: int, offset: int,
                 batch_size: int, idle_wait_s: float, ids: list[str] | None = None,
                 backlog: tuple[int, int] = (-1, -1), linger: Linger | None = None) -> None:
        self._shared, self._release = shared, release
        self._linger = linger
        self._key = (topic, part)
        shared.add(topic, part, offset, ids, backlog)
        self._batch, self._idle = batch_size, timedelta(seconds=idle_wait_s)
        self._awake: datetime | None = None
        self._closed = False

    def next_batch(self) -> list[RawRecord]:
        if self._shared.drained(self._key):
            if self._linger is not None and self._linger.wait():
                self._awake = datetime.now(UTC) + timedelta(seconds=self._linger.poll_s)
                return []
            raise StopIteration()  # its records went out in earlier batches
        out = self._shared.take(self._batch)
        self._awake = None if out else datetime.now(UTC) + self._idle
        return out

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self):
        return self._shared.snapshot(self._key)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release(self._shared, *self._key)


class KafkaRawSource(FixedPartitionedSource[RawRecord, int]):
    """Every partition of ``topics`` from the beginning (or the recovered offset); with
    ``tail`` it keeps waiting for new records, else it ends at the end of each partition."""

    def __init__(self, brokers: str, topics: list[str], tail: bool = True,
                 batch_size: int = 1000, idle_wait_s: float = 0.001,
                 extra_config: dict | None = None, align: bool = True,
                 partition_idle_s: float = 1.0, dedup_ids: int = 0,
                 linger: Linger | None = None) -> None:
        """``linger``: without ``tail``, an ended partition waits until ``linger`` lets it
        end (``connectors.linger``)."""
        self._brokers, self._topics, self._tail = brokers, list(topics), tail
        self._linger = linger
        self._align, self._partition_idle_s = align, partition_idle_s
        self._dedup_ids = dedup_ids
        self._ends: dict[tuple[str, int], tuple[int, int]] | None = None  # at the start
        self._batch, self._idle = batch_size, idle_wait_s
        self._extra = extra_config or {}
        self._consumers: dict[int, _WorkerConsumer] = {}  # per worker thread
        self._lock = threading.Lock()

    def _release(self, shared: _WorkerConsumer, topic: str, part: int) -> None:
        with self._lock:
            if shared.remove(topic, part):
                del self._consumers[shared.owner]

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
        with self._lock:  # the partitions a worker (thread) reads share its consumer
            owner = threading.get_ident()
            shared = self._consumers.get(owner)
            if shared is None:
                shared = self._consumers[owner] = _WorkerConsumer({
                    "bootstrap.servers": self._brokers, "group.id": "bespoke-unused",
                    "enable.auto.commit": False, "enable.partition.eof": not self._tail,
                    **self._extra}, owner, self._align, self._partition_idle_s,
                    dedup_ids=self._dedup_ids)
        offset, ids = split_resume(resume_state)
        backlog = self._backlogs().get((topic, int(idx)), (-1, -1)) if self._align \
            else (-1, -1)
        return _Partition(shared, self._release, topic, int(idx),
                          OFFSET_BEGINNING if offset is None else offset,
                          self._batch, self._idle, ids, backlog, self._linger)

    def _backlogs(self) -> dict[tuple[str, int], tuple[int, int]]:
        """Every partition's (low, high) watermarks, asked once (by an admin client: a
        synchronous watermark query on the reading consumer left it costing 0.1-0.2 of a
        core while idle); (-1, -1) where the broker does not answer."""
        with self._lock:
            if self._ends is None:
                self._ends = {}
                try:
                    client = AdminClient({"bootstrap.servers": self._brokers, **self._extra})
                    parts = []
                    for topic in self._topics:
                        meta = client.list_topics(topic, timeout=10).topics[topic]
                        parts += [TopicPartition(topic, i) for i in meta.partitions]
                    ask = {"low": OffsetSpec.earliest(), "high": OffsetSpec.latest()}
                    got = {k: client.list_offsets({tp: spec for tp in parts},
                                                  request_timeout=10) for k, spec in ask.items()}
                    for tp in got["high"]:
                        self._ends[(tp.topic, tp.partition)] = (
                            got["low"][tp].result(timeout=10).offset,
                            got["high"][tp].result(timeout=10).offset)
                except Exception:  # noqa: BLE001 - unknown: the idle timeout decides
                    pass
            return self._ends


def kafka_raw_input(step_id: str, flow: Dataflow, brokers: str, topics: list[str],
                    tail: bool = True, batch_size: int = 1000, align: bool = True,
                    partition_idle_s: float = 1.0, dedup_ids: int = 0,
                    idle_wait_s: float = 0.001,
                    extra_config: dict | None = None,
                    linger: Linger | None = None) -> Stream[RawRecord]:
    """Read ``topics`` from the beginning (or the recovered offsets) as ``RawRecord``s.
    ``idle_wait_s``: how long Bytewax waits before asking an idle partition again (each
    ask wakes the worker: a rarely written topic, like the control topic, should wait
    longer than the event topics' 1 ms). ``extra_config``: the consumers' security settings
    (``Settings.kafka_security()``)."""
    return op.input(f"{step_id}_kafka", flow, KafkaRawSource(
        brokers, topics, tail, batch_size, idle_wait_s, extra_config=extra_config, align=align,
        partition_idle_s=partition_idle_s, dedup_ids=dedup_ids, linger=linger))
