"""The pipelined store sink's writer thread (a fake store: no server needed)."""

import threading

import pytest

from connectors.store_sink import StoreSink, StoreWriteFailed, epoch_store_sink
from features.store import StoreWrite


class SlowStore:
    """Records every ``apply``; the first one waits until ``release`` is set."""

    def __init__(self) -> None:
        self.calls: list[list] = []
        self.entered, self.release = threading.Event(), threading.Event()

    def apply(self, ops):
        self.entered.set()
        self.release.wait(10)
        self.calls.append(list(ops))

    def close(self):
        pass


def _w(i: int) -> StoreWrite:
    return StoreWrite("item", f"S{i}", "item_price_v1", {"price": float(i)}, i, 0)


def test_batches_queued_while_the_writer_is_busy_go_in_one_apply_in_order():
    store = SlowStore()
    part = StoreSink(lambda: store, delivery="pipelined").build("store", 0, 1)
    part.write_batch([[_w(1)]])
    assert store.entered.wait(10)  # the writer holds batch 1 in a slow apply
    part.write_batch([[_w(2), _w(3)]])
    part.write_batch([[_w(4)], [_w(5)]])
    part.write_batch([[_w(6)]])
    store.release.set()
    part.close()
    assert store.calls == [[_w(1)], [_w(i) for i in range(2, 7)]]


class FailingStore(SlowStore):
    def apply(self, ops):
        super().apply(ops)
        raise ConnectionError("store down")


def test_epoch_store_sink_snapshot_waits_until_every_batch_is_applied():
    store = SlowStore()
    part = epoch_store_sink(lambda: store).build_part("store", "w00000", None)
    part.write_batch([[_w(1)]])
    assert store.entered.wait(10)  # the writer is busy with batch 1
    part.write_batch([[_w(2)], [_w(3)]])
    done = threading.Event()
    t = threading.Thread(target=lambda: (part.snapshot(), done.set()))
    t.start()
    assert not done.wait(0.2)  # the snapshot waits for the writer
    store.release.set()
    assert done.wait(10)
    assert [op for call in store.calls for op in call] == [_w(1), _w(2), _w(3)]
    part.close()


def test_epoch_store_sink_snapshot_raises_a_failed_write():
    store = FailingStore()
    store.release.set()
    part = epoch_store_sink(lambda: store).build_part("store", "w00000", None)
    part.write_batch([[_w(1)]])
    with pytest.raises(StoreWriteFailed, match="store down"):
        part.snapshot()
    part.close()
