"""Kafka input: Bytewax's ``KafkaSource`` adapted to ``RawRecord`` (errors included).

Bytewax assigns partitions itself (no consumer group); offsets live in its recovery
store, so a resumed flow continues exactly where its last finished epoch ended.
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSource, KafkaSourceMessage
from bytewax.dataflow import Dataflow, Stream

from features.validate import RawRecord


def _to_raw(msg: KafkaSourceMessage | KafkaError) -> RawRecord:
    if isinstance(msg, KafkaError):
        m = msg.msg
        return RawRecord(m.topic or "?", max(0, m.partition or 0), max(0, m.offset or 0),
                         m.value, max(0, m.timestamp[1]), error=msg.err.str())
    return RawRecord(msg.topic or "?", msg.partition or 0, msg.offset or 0, msg.value,
                     max(0, msg.timestamp[1]))


def kafka_raw_input(step_id: str, flow: Dataflow, brokers: str, topics: list[str],
                    tail: bool = True, batch_size: int = 1000) -> Stream[RawRecord]:
    """Read ``topics`` from the beginning (or the recovered offsets) as ``RawRecord``s."""
    src = KafkaSource(brokers.split(","), topics, tail=tail, batch_size=batch_size,
                      raise_on_errors=False)
    msgs = op.input(f"{step_id}_kafka", flow, src)
    return op.map(f"{step_id}_raw", msgs, _to_raw)
