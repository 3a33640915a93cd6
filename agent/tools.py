"""The governed tool runtime the decision agent calls tools through.

Each tool declares what it is (name, description, input/output models, read-only or side
effects, authorization scope) and how it may be called (timeout, retries with a shared
**retry budget**, rate limit, **circuit breaker**). ``ToolRuntime.call`` enforces all of it
and returns the outcome with a record for the decision log (a dict with the fields of
``features.events.ToolCall``):

- ``unauthorized``: the caller lacks the tool's scope (nothing is called);
- ``rate_limited``: the tool's token bucket is empty (nothing is called);
- ``breaker_open``: the tool failed too often lately (pybreaker); callers take their
  plan's fallback step;
- ``timeout``: ``thread`` tools are abandoned after ``timeout_ms``; ``inline`` tools (fast
  in-process reads) cannot be interrupted, so a late result is discarded as a timeout;
- ``error`` after the retries the policy and the retry budget allow; a ``LookupError``
  (the tool worked, the answer is "none": no price, no valid configuration) is not retried
  and does not count against the breaker;
- ``replayed``: a side-effecting call whose idempotency key already succeeded returns the
  recorded output instead of acting twice (a replay after recovery);
- ``over_budget``: the call would cost more than the decision's budget allows
  (``agent.cost_budget``): nothing is called, the plan takes its fallback;
- ``ok``.

**Costs**: a tool declares ``cost_per_call``; a tool whose service reports the price of a
call returns it as ``_cost`` in its output (taken out before the output is validated). A
call's record carries its ``cost`` when it has one (every attempt of a failed call costs
the declared price). A budget is asked for the larger of the declared price and the last
one the service reported.

``ToolRuntime.call_many`` runs a read-only, trusted, inline tool for many inputs as **one
governed call** (one scope check, rate-limit token, breaker call, timeout of ``timeout_ms``
per input, retries of timeouts within the budget); each input still gets its own result
and record (outcome, its share of the latency). When the batch raises, the inputs are called
one by one, so a failure stays with the inputs that cause it. The candidate step calls its
retrieval tools this way once per chunk of users. Other tools go input by input.

>>> rt = ToolRuntime([Tool(ToolSpec(name="echo", description="returns its input",
...                                 scope="demo:read"), lambda x: {"y": x["x"]})])
>>> r = rt.call("echo", {"x": 1}, scopes=frozenset({"demo:read"}))
>>> r.outcome, r.output, r.record["tool"]
('ok', {'y': 1}, 'echo')
>>> rt.call("echo", {"x": 1}, scopes=frozenset()).outcome
'unauthorized'
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Literal, NamedTuple, Protocol

import pybreaker
from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["ok", "error", "timeout", "breaker_open", "rate_limited", "unauthorized",
                  "replayed", "over_budget"]


class ToolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    scope: str = Field(description="authorization scope a caller needs, e.g. inventory:read")
    read_only: bool = True
    input_model: type[BaseModel] | None = None
    output_model: type[BaseModel] | None = None
    isolation: Literal["inline", "thread"] = "inline"
    timeout_ms: float = Field(50.0, gt=0)
    max_attempts: int = Field(2, ge=1, le=10)
    retry_budget: int = Field(20, ge=0, description="retries allowed per budget window")
    retry_window_s: float = Field(10.0, gt=0)
    rate_per_s: float | None = Field(None, gt=0, description="token bucket rate; None = none")
    burst: int = Field(100, ge=1)
    breaker_fail_max: int = Field(5, ge=1)
    breaker_reset_s: float = Field(30.0, gt=0)
    cost_per_call: float = Field(0.0, ge=0, description="price of one call (a service that "
                                 "reports its price per call overrides it with ``_cost``)")
    private: tuple[str, ...] = Field((), description="inputs the decision log never shows "
                                     "(a raw user id): recorded as '[private]'")
    trusted: bool = Field(False, description="a built-in, in-process tool whose inputs and "
                          "outputs our tests check against its models: not re-validated per "
                          "call (an adapter to an outside service stays untrusted)")


class Tool(NamedTuple):
    spec: ToolSpec
    fn: Callable[[dict[str, Any]], dict[str, Any]]


class _NotFound(NamedTuple):
    """An input a batch call had no answer for (a ``LookupError``: not retried, no failure)."""

    error: str


class ToolResult(NamedTuple):
    outcome: Outcome
    output: dict[str, Any] | None
    record: dict[str, Any]  # the fields of features.events.ToolCall
    error: str | None = None


class Budget(Protocol):
    """A decision's cost budget (``agent.cost_budget.DecisionBudget``)."""

    def refusal(self, cost: float) -> str | None: ...

    def charge(self, cost: float) -> None: ...


class IdempotencyLedger(Protocol):
    """Where side-effecting calls remember their idempotency keys (survives restarts when
    backed by Redis: see ``connectors.redis_ledger``)."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, output: dict[str, Any]) -> None: ...


class MemoryLedger:
    def __init__(self, max_keys: int = 100_000) -> None:
        self._d: dict[str, dict[str, Any]] = {}
        self._max = max_keys

    def get(self, key: str) -> dict[str, Any] | None:
        return self._d.get(key)

    def put(self, key: str, output: dict[str, Any]) -> None:
        if len(self._d) >= self._max:
            self._d.pop(next(iter(self._d)))
        self._d[key] = output


class _Bucket:
    """Token bucket: ``rate`` tokens per second up to ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.t = float(burst), clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class _RetryBudget:
    """At most ``limit`` retries in any ``window_s``: retries cannot amplify an outage."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float]) -> None:
        self.limit, self.window, self.clock = limit, window_s, clock
        self.used: deque[float] = deque()

    def take(self) -> bool:
        now = self.clock()
        while self.used and self.used[0] <= now - self.window:
            self.used.popleft()
        if len(self.used) >= self.limit:
            return False
        self.used.append(now)
        return True


class ToolTimeout(Exception):
    pass


_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="bespoke-tool")


_STATE_NAMES = {"closed": "closed", "open": "open", "half-open": "half_open"}
_SCALARS = (str, int, float, bool, type(None))
_SEQUENCES = (list, tuple)


def _jsonable(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, _SCALARS) else
                list(map(str, v)) if isinstance(v, _SEQUENCES) else str(v))
            for k, v in inputs.items()}


class ToolRuntime:
    def __init__(self, tools: list[Tool], ledger: IdempotencyLedger | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tools = {t.spec.name: t for t in tools}
        if len(self.tools) != len(tools):
            raise ValueError("duplicate tool names")
        self.ledger = ledger or MemoryLedger()
        self.reported: dict[str, float] = {}  # the last price a service reported per tool
        self.clock = clock
        self._lock = threading.Lock()
        self.breakers = {n: pybreaker.CircuitBreaker(fail_max=t.spec.breaker_fail_max,
                                                     reset_timeout=t.spec.breaker_reset_s,
                                                     exclude=[LookupError], name=n)
                         for n, t in self.tools.items()}
        self.budgets = {n: _RetryBudget(t.spec.retry_budget, t.spec.retry_window_s, clock)
                        for n, t in self.tools.items()}
        self.buckets = {n: _Bucket(t.spec.rate_per_s, t.spec.burst, clock)
                        for n, t in self.tools.items() if t.spec.rate_per_s}

    def catalog(self) -> list[dict[str, Any]]:
        """What each tool is and how it may be called (for docs and the decision log)."""
        out = []
        for t in self.tools.values():
            s = t.spec
            out.append({"name": s.name, "description": s.description, "scope": s.scope,
                        "read_only": s.read_only, "timeout_ms": s.timeout_ms,
                        "input_schema": s.input_model.model_json_schema() if s.input_model
                        else None,
                        "output_schema": s.output_model.model_json_schema() if s.output_model
                        else None})
        return out

    def _invoke(self, tool: Tool, inputs: dict[str, Any]) -> dict[str, Any]:
        s = tool.spec
        if s.isolation == "thread":
            fut = _POOL.submit(tool.fn, inputs)
            try:
                out = fut.result(timeout=s.timeout_ms / 1000)
            except FutureTimeout as e:
                fut.cancel()
                raise ToolTimeout(f"{s.name} took over {s.timeout_ms} ms") from e
        else:
            t0 = self.clock()
            out = tool.fn(inputs)
            if (self.clock() - t0) * 1000 > s.timeout_ms:
                raise ToolTimeout(f"{s.name} took over {s.timeout_ms} ms (result discarded)")
        cost = out.pop("_cost", None) if type(out) is dict else None
        if s.output_model is not None and not s.trusted:
            out = s.output_model.model_validate(out).model_dump()
        if cost is not None:
            out["_cost"] = cost
        return out

    def _record(self, name: str, inputs: dict[str, Any], outcome: Outcome,
                latency_ms: float) -> dict[str, Any]:
        """A call's decision-log record (``features.events.ToolCall`` fields)."""
        private = self.tools[name].spec.private
        shown = {k: "[private]" if k in private else v for k, v in inputs.items()} \
            if private else inputs
        return {"tool": name, "inputs": _jsonable(shown), "outcome": outcome,
                "latency_ms": latency_ms,
                "breaker_state": _STATE_NAMES[self.breakers[name].current_state]}

    def _done(self, name: str, inputs: dict[str, Any], idempotency_key: str | None, t0: float,
              outcome: Outcome, output: dict[str, Any] | None,
              error: str | None = None, cost: float = 0.0,
              refusal: str | None = None, attempts: list[int] | None = None) -> ToolResult:
        rec = self._record(name, inputs, outcome, round((self.clock() - t0) * 1000, 3))
        if idempotency_key is not None:
            rec["idempotency_key"] = idempotency_key
        if cost:
            rec["cost"] = round(cost, 6)
        if refusal is not None:
            rec["budget"] = refusal
        if attempts is not None:
            if attempts[0] > 1:
                rec["attempts"] = attempts[0]
            if attempts[1]:
                rec["retry_budget_exhausted"] = True
        return ToolResult(outcome, output, rec, error)

    def call(self, name: str, inputs: dict[str, Any], scopes: frozenset[str],
             idempotency_key: str | None = None, budget: Budget | None = None) -> ToolResult:
        """One governed call (see the module docstring); ``budget``: the decision's cost
        budget, asked before the call and charged after it."""
        tool = self.tools[name]
        s = tool.spec
        t0 = self.clock()
        if s.scope not in scopes:
            return self._done(name, inputs, idempotency_key, t0, "unauthorized", None,
                              f"missing scope {s.scope}")
        if s.input_model is not None and not s.trusted:
            try:
                inputs = s.input_model.model_validate(inputs).model_dump()
            except ValueError as e:
                return self._done(name, inputs, idempotency_key, t0, "error", None,
                                  f"invalid input: {e}")
        if not s.read_only:
            if idempotency_key is None:
                return self._done(name, inputs, idempotency_key, t0, "error", None,
                                  "side-effecting tools need an idempotency key")
            seen = self.ledger.get(idempotency_key)
            if seen is not None:
                return self._done(name, inputs, idempotency_key, t0, "replayed", seen)
        estimate = max(s.cost_per_call, self.reported.get(name, 0.0))
        if budget is not None and estimate > 0:
            refusal = budget.refusal(estimate)
            if refusal is not None:
                return self._done(name, inputs, idempotency_key, t0, "over_budget", None,
                                  refusal, refusal=refusal)
        if not self._take_token(name):
            return self._done(name, inputs, idempotency_key, t0, "rate_limited", None)
        remember = None if s.read_only else (  # what a replay returns: the output, no price
            lambda out: self.ledger.put(idempotency_key,  # type: ignore[arg-type]
                                        {k: v for k, v in out.items() if k != "_cost"}))
        attempts = [0, 0]  # invocations, whether the retry budget refused a retry
        # a side-effecting tool gets its idempotency key (an outside service dedups by it)
        given = inputs if s.read_only else {**inputs, "_idempotency_key": idempotency_key}
        outcome, out, error = self._attempts(name, self._invoke, tool, given,
                                             on_success=remember, attempts=attempts)
        cost = s.cost_per_call * attempts[0]
        if out is not None and "_cost" in out:
            out = dict(out)
            reported = float(out.pop("_cost"))
            self.reported[name] = reported
            cost = s.cost_per_call * (attempts[0] - 1) + reported
        if budget is not None and cost:
            budget.charge(cost)
        return self._done(name, inputs, idempotency_key, t0, outcome, out, error, cost,
                          attempts=attempts)

    def _take_token(self, name: str) -> bool:
        """The tool's rate limit: a token from its bucket (always, without a limit)."""
        bucket = self.buckets.get(name)
        if bucket is None:
            return True
        with self._lock:
            return bucket.take()

    def _attempts(self, name: str, invoke: Callable[..., Any], *args: Any, propagate: bool = False,
                  on_success: Callable[[Any], None] | None = None,
                  attempts: list[int] | None = None) -> tuple[Outcome, Any, str | None]:
        """``invoke(*args)`` through the tool's breaker, retried within its policy and the
        retry budget: (outcome, output, error). A ``LookupError`` is a definite "none": no
        retry, no breaker failure. ``on_success(output)`` runs within the attempt (a failure
        there is the attempt's). With ``propagate``, other exceptions are raised to the
        caller instead of being retried. ``attempts[0]`` counts the tool's invocations,
        ``attempts[1]`` is set when the retry budget refused a retry."""
        s = self.tools[name].spec
        breaker = self.breakers[name]
        attempt, last_error, outcome = 0, None, "error"
        while True:
            attempt += 1
            try:
                if attempts is not None and breaker.current_state != "open":
                    attempts[0] += 1
                out = breaker.call(invoke, *args)
                if on_success is not None:
                    on_success(out)
                return "ok", out, None
            except pybreaker.CircuitBreakerError as e:
                if attempt == 1 or breaker.current_state == "open":
                    return "breaker_open", None, str(e) or "breaker open"
                last_error, outcome = str(e), "error"
            except ToolTimeout as e:
                last_error, outcome = str(e), "timeout"
            except LookupError as e:
                return "error", None, f"not found: {e}"
            except Exception as e:  # noqa: BLE001 - a tool's failure is an outcome, not a crash
                if propagate:
                    raise
                last_error, outcome = f"{type(e).__name__}: {e}", "error"
            with self._lock:
                may_retry = attempt < s.max_attempts and self.budgets[name].take()
            if not may_retry and attempt < s.max_attempts and attempts is not None:
                attempts[1] = 1  # the retry budget, not the policy, stopped it
            if not may_retry:
                return outcome, None, last_error  # type: ignore[return-value]

    def _invoke_many(self, tool: Tool, inputs: list[dict[str, Any]]) -> list[Any]:
        t0 = self.clock()
        out: list[Any] = []
        for x in inputs:
            try:
                out.append(tool.fn(x))
            except LookupError as e:
                out.append(_NotFound(f"not found: {e}"))
        budget_ms = tool.spec.timeout_ms * max(1, len(inputs))
        if (self.clock() - t0) * 1000 > budget_ms:
            raise ToolTimeout(f"{tool.spec.name} took over {budget_ms} ms for {len(inputs)} "
                              f"inputs (results discarded)")
        return out

    def call_many(self, name: str, inputs: list[dict[str, Any]], scopes: frozenset[str],
                  budgets: list[Budget | None] | None = None) -> list[ToolResult]:
        """``call`` for each of ``inputs`` (``budgets``: each one's, or None); one governed
        call when the tool is read-only, trusted, inline and free (see the module
        docstring)."""
        tool = self.tools[name]
        s = tool.spec
        if (not s.read_only or not s.trusted or s.isolation != "inline" or len(inputs) < 2
                or s.cost_per_call > 0):
            each_budget = budgets or [None] * len(inputs)
            return [self.call(name, x, scopes, budget=b)
                    for x, b in zip(inputs, each_budget, strict=True)]
        t0 = self.clock()

        def each(outcome: Outcome, outputs: list[Any] | None = None,
                 error: str | None = None) -> list[ToolResult]:
            share = round((self.clock() - t0) * 1000 / len(inputs), 3)
            results = []
            for i, x in enumerate(inputs):
                o, out, err = outcome, None, error
                if outputs is not None:
                    out = outputs[i]
                    if type(out) is _NotFound:
                        o, out, err = "error", None, out.error  # type: ignore[attr-defined]
                results.append(ToolResult(o, out, self._record(name, x, o, share), err))
            return results

        if s.scope not in scopes:
            return each("unauthorized", error=f"missing scope {s.scope}")
        if not self._take_token(name):
            return each("rate_limited")
        try:
            outcome, outputs, error = self._attempts(name, self._invoke_many, tool, inputs,
                                                     propagate=True)
        except Exception:  # noqa: BLE001 - which inputs failed? ask input by input
            return [self.call(name, x, scopes) for x in inputs]
        return each(outcome, outputs if outcome == "ok" else None, error)
