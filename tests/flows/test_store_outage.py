"""A Redis outage degrades the flow and never stops it: reads answer "absent" within their
timeout, writes are retained and applied when the server is back, and a flow whose Redis is
down from the start runs to its end with every decision recorded as degraded. Real
redis-server processes on loopback, killed with SIGKILL and paused with SIGSTOP by PID."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator, write_jsonl
from connectors.store_sink import store_factory
from features.store import StorePurge, StoreWrite
from flows.main import RunConfig, run
from flows.settings import Settings
from scripts.servers import free_port, redis_process

pytestmark = pytest.mark.redis


def _w(key: str, n: int, ts: int) -> StoreWrite:
    return StoreWrite("user", key, "t_v1", {"n": n}, ts, 0)


def test_kill_and_restart_writes_are_retained_then_applied():
    port = free_port()
    with redis_process(port) as (url, proc):
        store = store_factory(url, timeout_s=0.5)()
        store.apply([_w("a", 1, 1), _w("b", 1, 1)])
        assert store.read_many("user", ["a"]) == [{"t_v1.n": 1}]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    t0 = time.monotonic()
    store.apply([_w("a", 2, 2), _w("a", 3, 3), StorePurge("user", "b"), _w("c", 1, 1)])
    assert store.read_many("user", ["a", "c"]) == [None, None]  # absent, not an exception
    assert time.monotonic() - t0 < 5
    assert store.degraded and store.retained == 3  # newest-wins: a=3, the purge, c=1
    with redis_process(port):  # back, empty (no persistence): the retained writes land
        time.sleep(2.5)  # the breaker's reset timeout
        store.apply([_w("d", 1, 1)])
        assert store.retained == 0
        assert store.read_many("user", ["a", "b", "c", "d"]) == [
            {"t_v1.n": 3}, None, {"t_v1.n": 1}, {"t_v1.n": 1}]
        assert not store.degraded
        store.close()


def test_a_paused_server_costs_a_timeout_not_a_hang():
    with redis_process() as (url, proc):
        store = store_factory(url, timeout_s=0.5)()
        store.apply([_w("a", 1, 1)])
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            for _ in range(5):  # the breaker opens after 3 failures: the rest are instant
                assert store.read_many("user", ["a"]) == [None]
            store.apply([_w("a", 2, 2)])
            assert time.monotonic() - t0 < 4 and store.retained == 1
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(2.5)
        store.apply([])
        assert store.retained == 0 and store.read_many("user", ["a"]) == [{"t_v1.n": 2}]
        store.close()


@pytest.mark.parametrize("join", ["processing_time", "event_time"])
def test_flow_runs_to_its_end_with_redis_down_and_records_the_fallback(tmp_path, join):
    """Reading the store (processing_time), every feed records the fallback; reading facts
    from the flow itself (event_time), the decisions do not need Redis at all."""
    events = tmp_path / "events.jsonl"
    write_jsonl(str(events), Generator(GenConfig(seed=3, users=100, items=80, events=1500,
                                                 malformed_rate=0.0)).records())
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    t0 = time.monotonic()
    run(RunConfig(inputs=[str(events)], output=str(tmp_path / "out"), store=url,
                  settings=Settings(_env_file=None, progress_every_s=0, redis_timeout_s=0.5,
                                    decision_join=join, redis_close_wait_s=1.0)))
    assert time.monotonic() - t0 < 60
    records = [json.loads(b) for b in read_channel(tmp_path / "out", "decision_records")]
    feeds = [r for r in records if r["decision_type"] == "feed_update"]
    degraded = [r for r in feeds if "store_unavailable" in r["fallbacks"]]
    if join == "processing_time":
        assert feeds and len(degraded) == len(feeds)
    else:
        assert feeds and not degraded
        assert sum(bool(r["output"].get("items")) for r in feeds) > len(feeds) // 2


@pytest.mark.slow
def test_a_15s_pause_mid_run_degrades_decisions_and_loses_no_feature_write(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import redis

    from connectors.redis_store import RedisStore
    from tests.flow_checks import ITEM_COUNT, USER_COUNT, counts_in_store, expected_counts

    recs = list(Generator(GenConfig(seed=9, users=400, items=200, events=40_000,
                                    malformed_rate=0.0)).records())
    events = tmp_path / "events.jsonl"
    write_jsonl(str(events), recs)
    root = Path(__file__).resolve().parents[2]
    with redis_process() as (url, server):
        client = redis.Redis.from_url(url)
        # decisions that read the store (event_time ones read facts from the flow)
        env = {**os.environ, "BESPOKE_REDIS_TIMEOUT_S": "0.5", "BESPOKE_PROGRESS_EVERY_S": "0",
               "BESPOKE_DECISION_JOIN": "processing_time"}
        flow = subprocess.Popen([sys.executable, "-m", "flows", "run", "--input", str(events),
                                 "--output", str(tmp_path / "out"), "--store", url],
                                cwd=root, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while client.dbsize() < 50 and time.monotonic() < deadline:
                time.sleep(0.05)  # the flow is writing: pause Redis mid-run
            os.kill(server.pid, signal.SIGSTOP)
            time.sleep(15)
            paused_alive = flow.poll() is None or flow.returncode == 0
            os.kill(server.pid, signal.SIGCONT)
            _, err = flow.communicate(timeout=180)
        finally:
            if flow.poll() is None:
                flow.kill()
        assert paused_alive and flow.returncode == 0, err.decode()[-2000:]
        users, items, _ = expected_counts(recs)
        store = RedisStore(url)
        assert counts_in_store(store, "item", items, ITEM_COUNT) == dict(items)
        assert counts_in_store(store, "user", users, USER_COUNT) == dict(users)
    records = [json.loads(b) for b in read_channel(tmp_path / "out", "decision_records")]
    degraded = sum("store_unavailable" in r["fallbacks"] for r in records)
    assert 0 < degraded < len(records)
