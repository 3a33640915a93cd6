"""The governed tool runtime: scopes, timeouts, retry budget, breaker, rate limit, replay."""

import time

import pytest
from pydantic import BaseModel

from agent.tools import MemoryLedger, Tool, ToolRuntime, ToolSpec

READ = frozenset({"t:read", "t:write"})


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def spec(**kw) -> ToolSpec:
    return ToolSpec(**{"name": "t", "description": "test tool", "scope": "t:read", **kw})


class Flaky:
    """Fails the first ``fails`` calls, then answers; counts calls."""

    def __init__(self, fails: int) -> None:
        self.fails, self.calls = fails, 0

    def __call__(self, inputs: dict) -> dict:
        self.calls += 1
        if self.calls <= self.fails:
            raise ConnectionError("backend down")
        return {"ok": True, "n": self.calls}


def test_retries_within_policy_then_succeed():
    fn = Flaky(fails=1)
    rt = ToolRuntime([Tool(spec(max_attempts=3), fn)])
    r = rt.call("t", {}, READ)
    assert r.outcome == "ok" and fn.calls == 2 and r.record["breaker_state"] == "closed"


def test_retry_budget_caps_retries_across_calls():
    fn = Flaky(fails=10_000)
    clock = Clock()
    rt = ToolRuntime([Tool(spec(max_attempts=3, retry_budget=4, retry_window_s=10,
                                breaker_fail_max=1000), fn)], clock=clock)
    for _ in range(5):
        assert rt.call("t", {}, READ).outcome == "error"
    assert fn.calls == 5 + 4  # every call tried once; only 4 retries in the window
    clock.t += 11  # a new window: retries are allowed again
    rt.call("t", {}, READ)
    assert fn.calls == 9 + 3


def test_breaker_opens_fails_fast_and_recovers_half_open():
    fn = Flaky(fails=3)
    rt = ToolRuntime([Tool(spec(max_attempts=1, breaker_fail_max=3, breaker_reset_s=0.2), fn)])
    outcomes = [rt.call("t", {}, READ).outcome for _ in range(3)]
    assert outcomes[:2] == ["error", "error"]
    assert outcomes[2] in ("error", "breaker_open")  # the third failure trips it
    r = rt.call("t", {}, READ)
    assert r.outcome == "breaker_open" and r.record["breaker_state"] == "open"
    assert fn.calls == 3  # fails fast: the backend is not called while open
    time.sleep(0.25)
    r = rt.call("t", {}, READ)  # half-open trial succeeds: closed again
    assert r.outcome == "ok" and rt.breakers["t"].current_state == "closed"


def test_thread_tools_time_out_and_inline_late_results_are_discarded():
    def slow(_):
        time.sleep(0.2)
        return {"late": True}

    rt = ToolRuntime([Tool(spec(name="th", isolation="thread", timeout_ms=20, max_attempts=1),
                           slow),
                      Tool(spec(name="inl", timeout_ms=20, max_attempts=1), slow)])
    t0 = time.monotonic()
    r = rt.call("th", {}, READ)
    assert r.outcome == "timeout" and time.monotonic() - t0 < 0.15  # abandoned, not awaited
    r = rt.call("inl", {}, READ)
    assert r.outcome == "timeout" and r.output is None and r.record["latency_ms"] >= 190


def test_rate_limit_is_a_token_bucket():
    clock = Clock()
    rt = ToolRuntime([Tool(spec(rate_per_s=2, burst=2), lambda x: {})], clock=clock)
    assert [rt.call("t", {}, READ).outcome for _ in range(3)] == ["ok", "ok", "rate_limited"]
    clock.t += 0.5  # one token back
    assert [rt.call("t", {}, READ).outcome for _ in range(2)] == ["ok", "rate_limited"]


def test_side_effects_need_keys_and_are_not_repeated_on_replay():
    calls = []
    ledger = MemoryLedger()
    push = Tool(spec(name="push", scope="t:write", read_only=False),
                lambda x: calls.append(x) or {"sent": x["to"]})
    rt = ToolRuntime([push], ledger=ledger)
    assert rt.call("push", {"to": "u1"}, READ).outcome == "error"  # no key: refused
    first = rt.call("push", {"to": "u1"}, READ, idempotency_key="offer:u1:e9")
    again = ToolRuntime([push], ledger=ledger).call("push", {"to": "u1"}, READ,
                                                    idempotency_key="offer:u1:e9")
    assert (first.outcome, again.outcome) == ("ok", "replayed")
    assert again.output == {"sent": "u1"} and len(calls) == 1


def test_schemas_are_enforced_and_published():
    class In(BaseModel):
        sku: str

    class Out(BaseModel):
        available: int

    rt = ToolRuntime([Tool(spec(input_model=In, output_model=Out),
                           lambda x: {"available": "7"})])
    assert rt.call("t", {"sku": 5}, READ).outcome == "error"  # wrong input type
    r = rt.call("t", {"sku": "A"}, READ)
    assert r.outcome == "ok" and r.output == {"available": 7}
    (entry,) = rt.catalog()
    assert entry["input_schema"]["properties"]["sku"]["type"] == "string"
    with pytest.raises(ValueError):
        ToolRuntime([Tool(spec(), lambda x: {}), Tool(spec(), lambda x: {})])


@pytest.mark.redis
def test_redis_ledger_keeps_replays_idempotent_across_runtimes(redis_url, redis_client):
    from connectors.redis_ledger import RedisLedger

    calls = []
    push = Tool(spec(name="push", scope="t:write", read_only=False),
                lambda x: calls.append(x) or {"sent": x["to"]})
    for _ in range(3):  # three "processes" in turn, as after two recoveries
        r = ToolRuntime([push], ledger=RedisLedger(redis_url)).call(
            "push", {"to": "u1"}, READ, idempotency_key="offer:u1:e1")
    assert r.outcome == "replayed" and r.output == {"sent": "u1"} and len(calls) == 1
    assert 0 < redis_client.ttl("bsp:v1:idem:offer:u1:e1") <= 7 * 86400


def _lookup_or_fail(x: dict) -> dict:
    if x["n"] == 13:
        raise LookupError("no such thing")
    if x["n"] == 66:
        raise RuntimeError("bad input")
    return {"n2": 2 * x["n"]}


def test_call_many_is_one_governed_call_with_a_result_per_input():
    clock = Clock()
    rt = ToolRuntime([Tool(spec(trusted=True, rate_per_s=1.0, burst=2), _lookup_or_fail)],
                     clock=clock)
    rs = rt.call_many("t", [{"n": 1}, {"n": 13}, {"n": 2}], READ)
    assert [r.outcome for r in rs] == ["ok", "error", "ok"]
    assert [r.output for r in rs] == [{"n2": 2}, None, {"n2": 4}]
    assert "not found" in rs[1].error and [r.record["inputs"] for r in rs] == [
        {"n": 1}, {"n": 13}, {"n": 2}]
    assert rt.breakers["t"].fail_counter == 0  # a "none" is not a failure
    # one rate-limit token for the batch: the second batch takes the last one
    assert rt.call_many("t", [{"n": 1}] * 5, READ)[0].outcome == "ok"
    assert {r.outcome for r in rt.call_many("t", [{"n": 1}] * 5, READ)} == {"rate_limited"}
    assert {r.outcome for r in rt.call_many("t", [{"n": 1}] * 2, frozenset())} == {
        "unauthorized"}


def test_call_many_keeps_a_failure_with_the_input_that_causes_it():
    rt = ToolRuntime([Tool(spec(trusted=True, max_attempts=1, breaker_fail_max=50),
                           _lookup_or_fail)])
    rs = rt.call_many("t", [{"n": 1}, {"n": 66}, {"n": 3}], READ)
    assert [r.outcome for r in rs] == ["ok", "error", "ok"]
    assert "bad input" in rs[1].error and rs[2].output == {"n2": 6}


def test_call_many_batch_timeout_and_open_breaker_apply_to_every_input():
    clock = Clock()

    def slow(x: dict) -> dict:
        clock.t += 0.03  # 30 ms per input, 20 ms allowed per input
        return {}

    rt = ToolRuntime([Tool(spec(trusted=True, timeout_ms=20, max_attempts=1,
                                breaker_fail_max=2), slow)], clock=clock)
    assert {r.outcome for r in rt.call_many("t", [{}] * 3, READ)} == {"timeout"}
    assert rt.breakers["t"].fail_counter == 1  # one batch, one failure
    assert {r.outcome for r in rt.call_many("t", [{}] * 3, READ)} == {"breaker_open"}
    assert all(r.record["breaker_state"] == "open" for r in rt.call_many("t", [{}] * 2, READ))
