"""The store-row cache: hits, misses, and stale-while-revalidate (rows seen lately served at
once and read again in the background; old or unseen rows read while the caller waits)."""

import threading
import time

import pytest

from connectors.cached_store import CachedRows
from connectors.redis_store import RedisStore
from features.store import StoreWrite


class CountingStore:
    def __init__(self, rows: dict[str, dict]) -> None:
        self.rows = rows
        self.calls: list[list[str]] = []
        self.gate: threading.Event | None = None  # set: reads wait for it (a slow store)

    def read_many(self, entity: str, keys: list[str]) -> list[dict | None]:
        if self.gate is not None:
            self.gate.wait(10)
        self.calls.append(list(keys))
        return [dict(self.rows[k]) if k in self.rows else None for k in keys]


def _cache(store, stale_s=1.0, **kw):
    now = [0.0]
    return CachedRows(store, ttl_s=1.0, stale_s=stale_s, clock=lambda: now[0],
                      background=False, **kw), now


def test_fresh_rows_are_not_read_again_and_unseen_rows_are_read_at_once():
    store = CountingStore({"A": {"v": 1}, "B": {"v": 2}})
    c, now = _cache(store)
    assert c.read_many("item", ["A", "B", "A"]) == [{"v": 1}, {"v": 2}, {"v": 1}]
    now[0] = 0.9
    assert c.read_many("item", ["B"]) == [{"v": 2}]
    assert store.calls == [["A", "B"]]


def test_a_stale_row_is_served_at_once_then_refreshed_in_one_round_trip():
    store = CountingStore({"A": {"v": 1}, "B": {"v": 2}})
    c, now = _cache(store)
    c.read_many("item", ["A", "B"])
    store.rows.update({"A": {"v": 10}, "B": {"v": 20}})
    now[0] = 1.5  # past ttl, inside the stale window
    assert c.read_many("item", ["A"]) == [{"v": 1}]
    assert c.read_many("item", ["B", "A"]) == [{"v": 2}, {"v": 1}]
    assert len(store.calls) == 1  # the caller waited for nothing
    assert c.refresh_pending() == 2
    assert store.calls[-1] == ["A", "B"]  # both in one read, each once
    assert c.read_many("item", ["A", "B"]) == [{"v": 10}, {"v": 20}]
    assert c.refresh_pending() == 0


@pytest.mark.parametrize(("stale_s", "at"), [(0.5, 1.6), (0.0, 1.01)],
                         ids=["past-the-stale-window", "no-stale-window"])
def test_an_expired_row_beyond_the_stale_window_is_read_while_the_caller_waits(stale_s, at):
    store = CountingStore({"A": {"v": 1}})
    c, now = _cache(store, stale_s=stale_s)
    c.read_many("item", ["A"])
    store.rows["A"] = {"v": 2}
    now[0] = at  # ttl 1.0 + stale_s passed
    assert c.read_many("item", ["A"]) == [{"v": 2}]
    assert len(store.calls) == 2
    assert c.refresh_pending() == 0


def test_a_row_gone_from_the_store_is_not_served_stale_again():
    store = CountingStore({"A": {"v": 1}})
    c, now = _cache(store)
    c.read_many("item", ["A"])
    del store.rows["A"]
    now[0] = 1.5
    assert c.read_many("item", ["A"]) == [{"v": 1}]  # stale, queued
    c.refresh_pending()
    assert c.read_many("item", ["A"]) == [None]
    assert len(store.calls) == 3  # the refresh, then a read while waiting


def test_the_background_thread_refreshes_without_the_reader_waiting():
    store = CountingStore({"A": {"v": 1}})
    now = [0.0]
    c = CachedRows(store, ttl_s=1.0, stale_s=5.0, clock=lambda: now[0])
    c.read_many("item", ["A"])
    store.rows["A"] = {"v": 2}
    store.gate = threading.Event()  # the store is slow now
    now[0] = 2.0
    t0 = time.monotonic()
    assert c.read_many("item", ["A"]) == [{"v": 1}]
    assert time.monotonic() - t0 < 1.0  # did not wait for the slow read
    store.gate.set()
    deadline = time.monotonic() + 10
    while c.read_many("item", ["A"]) != [{"v": 2}] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert c.read_many("item", ["A"]) == [{"v": 2}]


def test_a_derived_cache_over_a_stale_row_cache_waits_for_nothing():
    store = CountingStore({"A": {"price": 3}})
    rows, now = _cache(store)
    facts = CachedRows(rows, ttl_s=1.0, clock=lambda: now[0],
                       derive=lambda r: (r or {}).get("price"))
    assert facts.read_many("item", ["A"]) == [3]
    store.rows["A"] = {"price": 4}
    now[0] = 1.5
    assert facts.read_many("item", ["A"]) == [3]  # from the stale row
    assert len(store.calls) == 1
    rows.refresh_pending()
    now[0] = 2.6  # the derived value expired too
    assert facts.read_many("item", ["A"]) == [4]


@pytest.mark.redis
def test_stale_while_revalidate_over_redis(redis_url):
    store = RedisStore(redis_url)
    key = f"swr-{time.time_ns()}"
    store.apply([StoreWrite("item", key, "item_stock_v1", {"available": 5}, 1, 0)])
    now = [0.0]
    c = CachedRows(store, ttl_s=1.0, stale_s=1.0, clock=lambda: now[0], background=False)
    assert c.read_many("item", [key])[0]["item_stock_v1.available"] == 5
    store.apply([StoreWrite("item", key, "item_stock_v1", {"available": 2}, 2, 0)])
    now[0] = 1.5
    assert c.read_many("item", [key])[0]["item_stock_v1.available"] == 5
    assert c.refresh_pending() == 1
    assert c.read_many("item", [key])[0]["item_stock_v1.available"] == 2
    store.close()
