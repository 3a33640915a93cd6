"""The Kafka connectors on their own, against a real broker: the raw source (offsets,
end of partitions, resume) and the checked sink in both delivery modes."""

from __future__ import annotations

import os
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.kafka_admin import ensure_topics, produce_all
from connectors.kafka_sink import CheckedKafkaSink, DeliveryFailed, epoch_kafka_sink
from connectors.kafka_source import KafkaRawSource
from features.events import Outgoing
from features.validate import END_OF_PARTITION, IDLE_PARTITION, is_marker
from scripts.kafka_util import consume_all

pytestmark = [pytest.mark.kafka]


def _drain(src: KafkaRawSource, resume: dict[str, int | None] | None = None):
    """Every record of every partition until their ends; (records, offsets to resume at).
    Each partition's last word is one end marker (features.validate.END_OF_PARTITION)."""
    out, offsets, ends = [], {}, []
    for part in src.list_parts():
        p = src.build_part("in", part, (resume or {}).get(part))
        try:
            while True:
                out += p.next_batch()
        except StopIteration:
            offsets[part] = p.snapshot()
        finally:
            p.close()
    for r in out:
        if is_marker(r):
            assert r.error == END_OF_PARTITION
            ends.append(r.partition)
        else:  # nothing of a partition after its end
            assert r.partition not in ends
    assert sorted(ends) == sorted({int(p.split("-")[0]) for p in src.list_parts()})
    return [r for r in out if not is_marker(r)], offsets


def test_raw_source_reads_every_record_once_and_resumes_after_the_last(kafka_bootstrap,
                                                                       topic_prefix):
    topic = topic_prefix + "in"
    ensure_topics(kafka_bootstrap, {topic: 3})
    produce_all(kafka_bootstrap, topic, ((f"k{i}", f"v{i}".encode()) for i in range(300)))
    src = KafkaRawSource(kafka_bootstrap, [topic], tail=False, batch_size=50)
    recs, offsets = _drain(src)
    assert sorted(r.value for r in recs) == sorted(f"v{i}".encode() for i in range(300))
    assert all(r.source == topic and r.error is None and r.received_ts > 0 for r in recs)
    for part in {r.partition for r in recs}:
        mine = [r.offset for r in recs if r.partition == part]
        assert mine == list(range(len(mine)))  # in order, none skipped or repeated
        assert offsets[f"{part}-{topic}"] == len(mine)  # resume after the last one read
    produce_all(kafka_bootstrap, topic, ((f"k{i}", f"w{i}".encode()) for i in range(30)))
    more, _ = _drain(src, offsets)
    assert sorted(r.value for r in more) == sorted(f"w{i}".encode() for i in range(30))


def test_raw_source_tail_returns_empty_batches_and_asks_to_be_called_later(kafka_bootstrap,
                                                                           topic_prefix):
    topic = topic_prefix + "tail"
    ensure_topics(kafka_bootstrap, {topic: 1})
    src = KafkaRawSource(kafka_bootstrap, [topic], tail=True)
    p = src.build_part("in", f"0-{topic}", None)
    try:
        assert p.next_batch() == [] and p.next_awake() is not None  # idle: back off
        produce_all(kafka_bootstrap, topic, [("k", b"v")])
        got = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got += [r for r in p.next_batch() if not is_marker(r)]
            time.sleep(0.001)
        assert [r.value for r in got] == [b"v"] and p.next_awake() is None
    finally:
        p.close()


def test_a_workers_partitions_share_one_consumer_and_keep_their_own_offsets(kafka_bootstrap,
                                                                           topic_prefix):
    """One call returns what arrived for any of the worker's partitions (one batch per
    worker loop, not one per partition); each partition's snapshot is still its own
    position; partitions built in another worker thread get another consumer."""
    import threading

    topic = topic_prefix + "shared"
    ensure_topics(kafka_bootstrap, {topic: 3})
    produce_all(kafka_bootstrap, topic, ((f"k{i}", f"v{i}".encode()) for i in range(90)))
    src = KafkaRawSource(kafka_bootstrap, [topic], tail=True)
    parts = [src.build_part("in", p, None) for p in src.list_parts()]
    try:
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 90 and time.monotonic() < deadline:
            # only the first partition is asked
            got += [r for r in parts[0].next_batch() if not is_marker(r)]
            time.sleep(0.001)
        assert sorted(r.value for r in got) == sorted(f"v{i}".encode() for i in range(90))
        by_part = {p: [r.offset for r in got if r.partition == p] for p in range(3)}
        assert all(offs == list(range(len(offs))) for offs in by_part.values())
        assert [p.snapshot() for p in parts] == [len(by_part[i]) for i in range(3)]
        assert len({id(p._shared) for p in parts}) == 1
        other = []
        t = threading.Thread(target=lambda: other.append(src.build_part("in", f"0-{topic}",
                                                                        5)))
        t.start()
        t.join()
        assert other[0]._shared is not parts[0]._shared and other[0].snapshot() == 5
        other[0].close()
    finally:
        for p in parts:
            p.close()
    assert not src._consumers  # the last partition closed its consumer


def _outgoing(n: int, size: int = 10) -> list[Outgoing]:
    return [Outgoing("feed_updates", f"u{i}".encode(), os.urandom(size), f"id{i}")
            for i in range(n)]


@pytest.mark.parametrize("delivery", ["batch", "pipelined"])
def test_sink_delivers_every_message_in_both_modes(kafka_bootstrap, topic_prefix, delivery):
    topic = topic_prefix + "out"
    ensure_topics(kafka_bootstrap, {topic: 2})
    part = CheckedKafkaSink(kafka_bootstrap, {"feed_updates": topic},
                            delivery=delivery).build("sink", 0, 1)
    sent = _outgoing(500)
    for i in range(0, 500, 50):
        part.write_batch(sent[i:i + 50])
    part.close()
    got = consume_all(kafka_bootstrap, topic)
    assert sorted(m.value() for m in got) == sorted(o.value for o in sent)
    assert {dict(m.headers())["bsp-id"].decode() for m in got} == {o.id for o in sent}


def test_pipelined_sink_raises_on_a_failed_delivery(kafka_bootstrap, topic_prefix):
    """The broker refuses a message over its size limit after the batch was handed over: the
    next write (or close) raises; nothing is dropped silently."""
    topic = topic_prefix + "big"
    ensure_topics(kafka_bootstrap, {topic: 1})
    part = CheckedKafkaSink(kafka_bootstrap, {"feed_updates": topic},
                            extra_config={"message.max.bytes": 8_000_000,
                                          "compression.type": "none"},
                            delivery="pipelined").build("sink", 0, 1)
    part.write_batch(_outgoing(1, size=3_000_000))  # over the broker's default 1 MB
    with pytest.raises(DeliveryFailed, match="not delivered"):
        for _ in range(200):  # the refusal arrives with a later delivery report
            part.write_batch(_outgoing(1))
            time.sleep(0.05)
    part.close()  # the rest was delivered


def test_epoch_sink_has_everything_acknowledged_when_it_snapshots(kafka_bootstrap, topic_prefix):
    """``delivery=epoch``: writes do not wait; the epoch's snapshot returns only when every
    message written is acknowledged, and raises for one the broker refused."""
    topic = topic_prefix + "epoch"
    ensure_topics(kafka_bootstrap, {topic: 2})
    part = epoch_kafka_sink(kafka_bootstrap, {"feed_updates": topic},
                            extra_config={"message.max.bytes": 8_000_000,
                                          "compression.type": "none"}
                            ).build_part("sink", "w00000", None)
    sent = _outgoing(300)
    for i in range(0, 300, 30):
        part.write_batch([sent[i:i + 20], sent[i + 20:i + 30]])  # chunks of Outgoing
    part.snapshot()
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "probe"})
    try:  # acknowledged means on the broker: the high watermarks count all 300
        assert sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                   for p in range(2)) == 300
    finally:
        c.close()
    part.write_batch([_outgoing(1, size=3_000_000)])  # over the broker's default 1 MB
    with pytest.raises(DeliveryFailed, match="not delivered"):
        part.snapshot()
    part.close()


def test_aligned_source_is_not_held_back_by_an_empty_partition(kafka_bootstrap, topic_prefix):
    """Tailing with event-time alignment: a partition with nothing to read (an empty
    control topic, a quiet partition) must not hold the others back."""
    import time

    from connectors.kafka_source import KafkaRawSource

    events, quiet = f"{topic_prefix}e", f"{topic_prefix}quiet"
    ensure_topics(kafka_bootstrap, {events: 4, quiet: 1})
    src = KafkaRawSource(kafka_bootstrap, [events, quiet], tail=True)
    parts = [src.build_part("s", p, None) for p in src.list_parts()]
    produce_all(kafka_bootstrap, events, [(f"k{i}", b"{}") for i in range(50)])
    got: list = []
    deadline = time.monotonic() + 0.5 + 5  # well under the 1 s idle timeout plus fetching
    while len(got) < 50 and time.monotonic() < deadline:
        for p in parts:
            got += [r for r in p.next_batch() if not is_marker(r)]
        time.sleep(0.01)
    for p in parts:
        p.close()
    assert len(got) == 50


def test_a_silent_partition_is_said_idle_once_per_silence(kafka_bootstrap, topic_prefix):
    """Tailing, a partition with nothing new for ``partition_idle_s`` gets one idle marker
    (the flow's input clock stops waiting for it, operators.decision_hold); a record on it
    ends the silence, and the next silence is said again."""
    import time

    from connectors.kafka_source import KafkaRawSource

    topic = f"{topic_prefix}idle"
    ensure_topics(kafka_bootstrap, {topic: 1})
    src = KafkaRawSource(kafka_bootstrap, [topic], tail=True, partition_idle_s=0.3)
    p = src.build_part("s", f"0-{topic}", None)
    seen: list = []

    def read_for(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            seen.extend(p.next_batch())
            time.sleep(0.01)

    try:
        read_for(1.2)
        assert [r.error for r in seen] == [IDLE_PARTITION]
        produce_all(kafka_bootstrap, topic, [("k", b"{}")])
        read_for(2.0)
        assert [r.value if r.value is not None else r.error for r in seen] == [
            IDLE_PARTITION, b"{}", IDLE_PARTITION]
    finally:
        p.close()
