"""The Redis online store against a real Redis server."""

import pytest

from connectors.memory_store import MemoryStore
from connectors.redis_store import RedisStore, redis_key
from features.store import StorePurge, StoreWrite

pytestmark = pytest.mark.redis


def test_newest_value_wins_and_ttl_is_set(redis_url, redis_client):
    s = RedisStore(redis_url)
    s.apply([StoreWrite("user", "u1", {"n": 2, "items": "A,B"}, ts=200, ttl_s=60),
             StoreWrite("user", "u1", {"n": 1, "items": "A"}, ts=100, ttl_s=60),  # older
             StoreWrite("item", "A", {"pop": 1.5}, ts=5, ttl_s=0)])
    assert s.read_many("user", ["u1", "nobody"]) == [{"n": 2, "items": "A,B"}, None]
    assert s.read_many("item", ["A"]) == [{"pop": 1.5}]
    assert 0 < redis_client.ttl(redis_key("user", "u1")) <= 60
    assert redis_client.ttl(redis_key("item", "A")) == -1  # no expiry asked
    s.apply([StoreWrite("user", "u1", {"n": 3}, ts=200, ttl_s=60)])  # same time: replay
    assert s.read_many("user", ["u1"])[0]["n"] == 3
    s.close()


def test_purge_removes_the_key(redis_url, redis_client):
    s = RedisStore(redis_url)
    s.apply([StoreWrite("user", "u9", {"n": 1}, ts=1, ttl_s=0), StorePurge("user", "u9")])
    assert s.read_many("user", ["u9"]) == [None]
    assert not redis_client.exists(redis_key("user", "u9"))


def test_memory_and_redis_stores_agree(redis_url, redis_client):
    ops = [StoreWrite("item", f"S{i % 7}", {"v": i, "t": f"x{i}"}, ts=i * (-1) ** i + 50,
                      ttl_s=100) for i in range(40)]
    ops.append(StorePurge("item", "S3"))
    mem, red = MemoryStore(), RedisStore(redis_url)
    mem.apply(ops)
    red.apply(ops)
    keys = [f"S{i}" for i in range(8)]
    assert mem.read_many("item", keys) == red.read_many("item", keys)
