"""The run's garbage-collector tuning: objects get frozen while a flow runs, nothing stays
frozen after it (else repeated runs in one process would never free their states)."""

import gc
import threading
import time
import uuid

import pytest

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator, write_jsonl
from connectors.memory_store import MemoryStore
from flows.gc_tuning import FreezeEvery
from flows.main import RunConfig, run
from flows.settings import Settings


def _wait_for(cond, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    return cond()


def test_freeze_every_freezes_new_objects_and_stop_unfreezes():
    f = FreezeEvery(0.01).start()
    try:
        before = gc.get_freeze_count()
        keep = [{"n": i} for i in range(5000)]
        assert _wait_for(lambda: gc.get_freeze_count() >= before + len(keep))
    finally:
        f.stop()
    assert gc.get_freeze_count() == 0
    assert not f._thread.is_alive()


def test_freeze_every_rejects_a_non_positive_period():
    with pytest.raises(ValueError):
        FreezeEvery(0)


def test_a_flow_run_freezes_while_running_and_leaves_nothing_frozen(tmp_path):
    path = tmp_path / "events.jsonl"
    write_jsonl(str(path), Generator(GenConfig(seed=3, users=200, items=100,
                                               events=4000)).records())
    seen = []
    stop = threading.Event()

    def watch():  # the largest freeze count seen while the flow runs
        while not stop.is_set():
            seen.append(gc.get_freeze_count())
            time.sleep(0.05)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    name = uuid.uuid4().hex
    cfg = RunConfig(inputs=[str(path)], output=str(tmp_path / "out"), store=f"memory://{name}",
                    settings=Settings(_env_file=None, progress_every_s=0,
                                      gc_freeze_every_s=0.05))
    try:
        run(cfg)
    finally:
        stop.set()
        w.join()
        MemoryStore.drop(name)
    assert read_channel(tmp_path / "out", "decision_records")  # the flow did run
    # frozen at the start, then again and again as the state grows
    assert len({v for v in seen if v}) >= 2
    assert gc.get_freeze_count() == 0
    threads = [t.name for t in threading.enumerate()]
    assert "gc-freeze" not in threads
