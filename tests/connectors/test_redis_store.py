"""The Redis online store against a real Redis server."""

import contextlib
import time

import pytest

from connectors.memory_store import MemoryStore
from connectors.redis_store import RedisStore, redis_key
from features.store import StorePurge, StoreWrite, latest_only

pytestmark = pytest.mark.redis


def W(entity, key, view, fields, ts, ttl):  # noqa: N802 - reads like the tuple it builds
    return StoreWrite(entity, key, view, fields, ts, ttl)


def test_newest_value_per_view_wins_and_ttl_only_extends(redis_url, redis_client):
    s = RedisStore(redis_url)
    s.apply([W("user", "u1", "a_v1", {"n": 2, "items": "A,B"}, 200, 60),
             W("user", "u1", "a_v1", {"n": 1, "items": "A"}, 100, 60),  # older: refused
             W("user", "u1", "b_v1", {"m": 7}, 50, 30),  # other view, older ts: kept
             W("item", "A", "p_v1", {"pop": 1.5}, 5, 0)])
    assert s.read_many("user", ["u1", "nobody"]) == [
        {"a_v1.n": 2, "a_v1.items": "A,B", "b_v1.m": 7}, None]
    assert s.read_many("item", ["A"]) == [{"p_v1.pop": 1.5}]
    assert 30 < redis_client.ttl(redis_key("user", "u1")) <= 60  # the shorter TTL did not cut
    assert redis_client.ttl(redis_key("item", "A")) == -1  # no expiry asked
    s.apply([W("user", "u1", "a_v1", {"n": 3}, 200, 60)])  # same time (a replay): applied
    assert s.read_many("user", ["u1"])[0]["a_v1.n"] == 3
    s.close()


def test_writes_are_one_round_trip_and_survive_a_script_flush(redis_url, redis_client):
    """A batch of writes is one pipeline (no script-existence query before it); when the
    server has lost the write script (restart, SCRIPT FLUSH) it is loaded again and the
    batch applied."""
    s = RedisStore(redis_url)
    before = redis_client.info("commandstats")
    s.apply([W("user", "rt1", "a_v1", {"n": 1}, 10, 0), W("user", "rt2", "a_v1", {"n": 2}, 10, 0)])
    after = redis_client.info("commandstats")

    def calls(stats, cmd):
        return stats.get(f"cmdstat_{cmd}", {}).get("calls", 0)

    assert calls(after, "evalsha") - calls(before, "evalsha") == 2
    assert calls(after, "script|exists") == calls(before, "script|exists")
    redis_client.script_flush()
    s.apply([W("user", "rt1", "a_v1", {"n": 5}, 20, 0)])
    assert s.read_many("user", ["rt1", "rt2"]) == [{"a_v1.n": 5}, {"a_v1.n": 2}]
    # several entities read in one pipeline, each answer in its request's order
    s.apply([W("item", "A", "p_v1", {"pop": 1.5}, 5, 0)])
    assert s.read_groups([("user", ["rt2", "nobody", "rt1"]), ("item", []), ("item", ["A"])]) == [
        [{"a_v1.n": 2}, None, {"a_v1.n": 5}], [], [{"p_v1.pop": 1.5}]]
    assert s.read_groups([]) == []
    s.close()


def test_expiry_really_happens(redis_url, redis_client):
    import time

    s = RedisStore(redis_url)
    s.apply([W("session", "s1", "v_v1", {"x": 1}, 1, 1)])
    assert s.read_many("session", ["s1"]) == [{"v_v1.x": 1}]
    time.sleep(2.1)
    assert s.read_many("session", ["s1"]) == [None]


def test_purge_removes_the_key(redis_url, redis_client):
    s = RedisStore(redis_url)
    s.apply([W("user", "u9", "a_v1", {"n": 1}, 1, 0), StorePurge("user", "u9")])
    assert s.read_many("user", ["u9"]) == [None]
    assert not redis_client.exists(redis_key("user", "u9"))


def test_memory_and_redis_stores_agree(redis_url, redis_client):
    ops = [W("item", f"S{i % 7}", f"v{i % 2}_v1", {"v": i, "t": f"x{i}"}, i * (-1) ** i + 50, 100)
           for i in range(40)]
    ops.append(StorePurge("item", "S3"))
    mem, red = MemoryStore(), RedisStore(redis_url)
    mem.apply(ops)
    red.apply(ops)
    keys = [f"S{i}" for i in range(8)]
    assert mem.read_many("item", keys) == red.read_many("item", keys)


@pytest.mark.parametrize("seed", range(5))
def test_a_keys_views_in_one_call_act_as_one_call_each(redis_url, redis_client, seed):
    """Several views of one key go in one script call: per view newest-wins, the TTL only
    extended, purges between writes kept in place; the same rows and TTLs as one write per
    call, and as the in-process store."""
    import random

    rnd = random.Random(seed)
    batches = [[StorePurge("user", f"g{seed}u{rnd.randrange(3)}") if rnd.random() < 0.05 else
                W("user", f"g{seed}u{rnd.randrange(3)}", f"v{rnd.randrange(4)}_v1",
                  {"n": rnd.randrange(100), "t": rnd.choice(["", "x", "a,b"])},
                  rnd.randrange(50), rnd.choice([0, 30, 60, 90]))
                for _ in range(rnd.randrange(1, 30))] for _ in range(6)]
    grouped, mem = RedisStore(redis_url), MemoryStore()
    before = redis_client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    for b in batches:
        grouped.apply(b)
        mem.apply(b)
    calls = redis_client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0) - before
    keys = [f"g{seed}u{i}" for i in range(3)]
    grouped_rows = grouped.read_many("user", keys)
    grouped_ttls = [redis_client.ttl(redis_key("user", k)) for k in keys]
    redis_client.delete(*[redis_key("user", k) for k in keys])
    single = RedisStore(redis_url)
    for b in batches:
        for op in latest_only(b):  # what a batch keeps, then one op per call: the reference
            single.apply([op])
    assert single.read_many("user", keys) == grouped_rows == mem.read_many("user", keys)
    ttls = [redis_client.ttl(redis_key("user", k)) for k in keys]
    assert all(abs(a - b) <= 1 for a, b in zip(ttls, grouped_ttls, strict=True))
    writes = sum(1 for b in batches for op in b if isinstance(op, StoreWrite))
    assert calls < writes  # fewer script calls than writes (purges split a key's group)


def test_prefix_purge_removes_every_session_of_a_user_and_nothing_else(redis_url, redis_client):
    s = RedisStore(redis_url)
    s.apply([W("session", f"{u}/s{i}", "ss_v1", {"n": i}, 1, 0)
             for u in ("u*1", "u*10", "ux1") for i in range(3)])
    s.apply([StorePurge("session", "u*1/", prefix=True)])
    left = sorted(k.decode() for k in redis_client.scan_iter(match="bsp:v1:session:*"))
    assert left == [f"bsp:v1:session:{u}/s{i}" for u in ("u*10", "ux1") for i in range(3)]
    mem = MemoryStore()
    mem.apply([W("session", f"{u}/s{i}", "ss_v1", {"n": i}, 1, 0)
               for u in ("u*1", "u*10", "ux1") for i in range(3)])
    mem.apply([StorePurge("session", "u*1/", prefix=True)])
    assert mem.keys("session") == [k.removeprefix("bsp:v1:session:") for k in left]


def test_pipelined_store_sink_applies_every_batch_in_order(redis_url, redis_client):
    """The writer thread applies batches in order (the newest write of a key lands last),
    everything is written by close, and a failed write raises in the flow."""
    from connectors.store_sink import StoreSink, StoreWriteFailed, store_factory

    part = StoreSink(store_factory(redis_url), delivery="pipelined").build("store", 0, 1)
    for ts in range(1, 201):
        part.write_batch([[StoreWrite("item", f"S{ts % 7}", "item_price_v1",
                                      {"price": float(ts)}, ts, 60)]])
    part.close()
    rows = RedisStore(redis_url).read_many("item", [f"S{i}" for i in range(7)])
    assert [r["item_price_v1.price"] for r in rows] == [
        float(max(ts for ts in range(1, 201) if ts % 7 == i)) for i in range(7)]

    class Broken:
        def apply(self, ops):
            raise ConnectionError("store down")

        def close(self):
            pass

    part = StoreSink(lambda: Broken(), delivery="pipelined").build("store", 0, 1)
    with pytest.raises(StoreWriteFailed, match="store down"):
        for _ in range(100):  # the failure surfaces at a later batch (or at close)
            part.write_batch([[StoreWrite("item", "S", "item_price_v1", {"price": 1.0}, 1, 60)]])
            time.sleep(0.01)
    with contextlib.suppress(StoreWriteFailed):  # batches queued after it failed too
        part.close()
    assert not part._thread.is_alive()
