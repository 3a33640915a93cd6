"""Epoch-confirmed outputs (``connectors.epoch_sink``): each worker writes what it made, and
everything written is confirmed by the epoch's snapshot, so an abort and resume loses
nothing that a committed epoch wrote. The writers here are fakes; the real Kafka and Redis
writers run in tests/flows/test_recovery.py and tests/flows/test_kafka_flow.py."""

from __future__ import annotations

import threading
from datetime import timedelta

import bytewax.operators as op
from bytewax._bytewax import cli_main
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource

from connectors.epoch_sink import (
    EpochConfirmedSink,
    current_worker,
    key_by_worker,
    worker_index_probe,
)


class _Broker:
    """Stands for an outside system: what is written is only *sent* until it is confirmed;
    a crash loses what was sent and not confirmed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.delivered: list = []
        self.log: list[tuple] = []  # (worker, "write" | "confirm", items)

    def writer(self) -> _Writer:
        return _Writer(self)


class _Writer:
    def __init__(self, broker: _Broker) -> None:
        self.broker, self.sent = broker, []

    def write_batch(self, items: list) -> None:
        self.sent += items
        with self.broker.lock:
            self.broker.log.append((current_worker()[0], "write", list(items)))

    def confirm(self) -> None:
        with self.broker.lock:
            self.broker.delivered += self.sent
            self.broker.log.append((current_worker()[0], "confirm", list(self.sent)))
        self.sent = []

    def close(self) -> None:
        pass  # as after a crash: only confirmed items count


def _flow(items, broker: _Broker, spread: bool) -> Dataflow:
    flow = Dataflow("epoch_sink_test")
    xs = op.input("in", flow, TestingSource(items, batch_size=5))
    worker_index_probe("worker_index", xs)
    if spread:  # a keyed step moves items to several workers, as the shard folds do
        keyed = op.key_on("key", xs, lambda x: str(x % 11))
        xs = op.map("unkey", op.stateful_map("pass", keyed, lambda s, x: (s, x)),
                    lambda kv: kv[1])
    made = op.map("made_on", xs, lambda x: (current_worker()[0], x))
    op.output("out", key_by_worker("key_by_worker", made),
              EpochConfirmedSink(broker.writer))
    return flow


def test_each_worker_writes_what_it_made_and_confirms_it_at_the_epoch_end():
    broker = _Broker()
    cli_main(_flow(list(range(600)), broker, spread=True), workers_per_process=2,
             epoch_interval=timedelta(milliseconds=5))
    writes = [(w, it) for w, kind, items in broker.log if kind == "write" for it in items]
    assert sorted(x for _, (_, x) in writes) == list(range(600))
    assert {w for w, _ in writes} == {0, 1}  # both workers made and wrote items
    assert all(w == made_on for w, (made_on, _) in writes)  # nothing crossed workers
    # every item was confirmed by a snapshot (the fake's close confirms nothing)
    assert sorted(x for _, x in broker.delivered) == list(range(600))
    confirms = [e for e in broker.log if e[1] == "confirm"]
    assert len(confirms) > 2  # at every epoch's end, not once at the end of the run


def test_abort_and_resume_loses_nothing_a_committed_epoch_wrote(tmp_path):
    init_db_dir(tmp_path, 1)
    items = list(range(300))
    pause = TestingSource.PAUSE(timedelta(milliseconds=20))  # lets epochs end
    source = [x for i in items for x in ([pause, i] if i % 30 == 0 else [i])]
    cut = source.index(170)
    source = source[:cut] + [TestingSource.ABORT()] + source[cut:]
    broker = _Broker()
    flow = _flow(source, broker, spread=False)
    run = dict(workers_per_process=1, epoch_interval=timedelta(milliseconds=5),
               recovery_config=RecoveryConfig(tmp_path))
    cli_main(flow, **run)  # stops at the abort, as a crash would
    first = {x for _, x in broker.delivered}
    assert 0 < len(first) < 300  # the abort stopped it mid-stream
    cli_main(_flow(source, broker, spread=False), **run)
    # everything reached the broker at least once; the resume repeated only the epochs
    # that had not committed, not the run from its start
    assert {x for _, x in broker.delivered} == set(items)
    assert len(broker.delivered) < 300 + 170


def test_a_resume_with_fewer_workers_finds_every_partition_an_owner(tmp_path):
    """The recovery store holds one sink partition per worker of the first run; a resume
    with fewer workers must still own each of them (Bytewax stops on a partition without an
    owner), and later more workers again."""
    init_db_dir(tmp_path, 2)
    pause = TestingSource.PAUSE(timedelta(milliseconds=20))
    source = ([x for i in range(200) for x in ([pause, i] if i % 20 == 0 else [i])]
              + [TestingSource.EOF()] + list(range(200, 300)))
    broker = _Broker()
    # a resumed run re-reads from its last committed epoch, so the 1-worker run ends at the
    # same EOF as the first; the 3-worker run reads the rest
    for workers in (2, 1, 3):
        cli_main(_flow(source, broker, spread=True), workers_per_process=workers,
                 epoch_interval=timedelta(milliseconds=5),
                 recovery_config=RecoveryConfig(tmp_path))
    assert {x for _, x in broker.delivered} == set(range(300))
    assert {w for w, kind, _ in broker.log if kind == "write"} == {0, 1, 2}
