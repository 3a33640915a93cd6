"""Goals, plans as data, the planner and the plan runner of the decision agent.

A ``Plan`` is declared per goal and versioned: ordered steps, each a tool call whose inputs
are *references* resolved at run time, and optional fallback steps taken when a step's tool
fails (error, timeout, open breaker, rate limit). References:

- ``trigger.<field>``: the triggering event (``user_id``, ``sku``, ``event_id``, ``ts``);
- ``features.<name>``: the user's features passed in by the caller;
- ``steps.<step id>.<field>``: an earlier step's output;
- ``const:<json>``: a literal.

The planner maps a trigger and the user's state to goals, deterministically. The runner
calls tools through ``ToolRuntime``, records every call, and reports the fallbacks taken.

>>> from agent.tools import Tool, ToolRuntime, ToolSpec
>>> rt = ToolRuntime([Tool(ToolSpec(name="double", description="2x", scope="s"),
...                        lambda x: {"y": 2 * x["x"]})])
>>> plan = Plan(name="p", version="1", goal="refresh_feed", steps=[
...     Step(id="a", tool="double", inputs={"x": "features.n"}),
...     Step(id="b", tool="double", inputs={"x": "steps.a.y"})])
>>> run = run_plan(plan, rt, frozenset({"s"}), trigger={}, features={"n": 3})
>>> run.ok, run.outputs["b"], [c["outcome"] for c in run.calls]
(True, {'y': 12}, ['ok', 'ok'])
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from agent.tools import Budget, ToolRuntime

Goal = Literal["refresh_feed", "push_offer", "propose_configuration"]
# what the decision agent may do with its tools (read catalog, stock, quotes, configurations)
AGENT_SCOPES = frozenset({"catalog:read", "inventory:read", "pricing:quote",
                          "configurator:read"})


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    tool: str
    inputs: dict[str, str] = {}
    fallback: str | None = Field(None, description="id of the fallback step if this fails")
    optional: bool = False  # a failure is recorded and the plan goes on without its output
    skip_if_empty: str | None = Field(None, description="input name: when it resolves to an "
                                      "empty value the tool is not called (recorded as "
                                      "skipped) and the step yields no output")


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    goal: Goal
    steps: list[Step] = Field(min_length=1)
    fallbacks: list[Step] = []
    scopes: list[str] = Field(default=[], description="scopes the plan runs with")


class PlanRun(NamedTuple):
    ok: bool
    outputs: dict[str, dict[str, Any]]
    calls: list[dict[str, Any]]  # tool call records (features.events.ToolCall fields)
    fallbacks: list[str]  # "step a failed (timeout): took fallback a_fb"
    failed_step: str | None
    errors: dict[str, str] = {}  # step id -> what went wrong


class UnresolvedReference(KeyError):
    pass


@lru_cache(maxsize=4096)
def _parse_ref(ref: str) -> tuple[str, Any, str]:
    """A reference as (kind, key, field): kind ``const`` holds the value in ``key``."""
    if ref.startswith("const:"):
        return "const", json.loads(ref[6:]), ""
    head, _, rest = ref.partition(".")
    if head == "steps":
        step, _, field = rest.partition(".")
        return head, step, field
    return head, rest, ""


def _resolve(ref: str, trigger: dict[str, Any], features: dict[str, Any],
             outputs: dict[str, dict[str, Any]]) -> Any:
    kind, key, field = _parse_ref(ref)
    try:
        if kind == "const":
            return key
        if kind == "trigger":
            return trigger[key]
        if kind == "features":
            return features[key]
        if kind == "steps":
            return outputs[key][field]
    except KeyError as e:
        raise UnresolvedReference(ref) from e
    raise UnresolvedReference(ref)


def idempotency_key(plan: Plan, step: Step, trigger: dict[str, Any]) -> str:
    """Deterministic per (plan version, step, trigger event): the same after a replay."""
    raw = f"{plan.name}@{plan.version}:{step.id}:{trigger.get('event_id', '')}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def run_plan(plan: Plan, runtime: ToolRuntime, scopes: frozenset[str], trigger: dict[str, Any],
             features: dict[str, Any], budget: Budget | None = None) -> PlanRun:
    """Run ``plan`` for one trigger (``run_plans`` of one)."""
    return run_plans(plan, runtime, scopes, [trigger], [features], [budget])[0]


class _Run:
    """One trigger's plan run in progress."""

    __slots__ = ("trigger", "features", "outputs", "calls", "taken", "errors", "failed",
                 "budget")

    def __init__(self, trigger: dict[str, Any], features: dict[str, Any],
                 budget: Budget | None = None) -> None:
        self.trigger, self.features, self.budget = trigger, features, budget
        self.outputs: dict[str, dict[str, Any]] = {}
        self.calls: list[dict[str, Any]] = []
        self.taken: list[str] = []
        self.errors: dict[str, str] = {}
        self.failed: str | None = None


def run_plans(plan: Plan, runtime: ToolRuntime, scopes: frozenset[str],
              triggers: list[dict[str, Any]], features: list[dict[str, Any]],
              budgets: list[Budget | None] | None = None) -> list[PlanRun]:
    """Run ``plan`` for many triggers, step by step: each step's tool is called once for all
    the triggers that need it (``ToolRuntime.call_many``); references, skips, fallbacks,
    optional steps and idempotency keys work per trigger exactly as for one. ``budgets``:
    each trigger's cost budget (``agent.cost_budget``): a call it cannot afford is
    ``over_budget`` and takes the step's fallback like any failure."""
    fallbacks = {s.id: s for s in plan.fallbacks}
    runs = [_Run(t, f, b) for t, f, b in zip(triggers, features,
                                             budgets or [None] * len(triggers), strict=True)]

    def call(step: Step, todo: list[_Run]) -> list[tuple[str, dict[str, Any] | None]]:
        results: list[tuple[str, dict[str, Any] | None]] = [("", None)] * len(todo)
        batch: list[int] = []
        inputs: list[dict[str, Any]] = []
        for j, run in enumerate(todo):
            try:
                x = {k: _resolve(v, run.trigger, run.features, run.outputs)
                     for k, v in step.inputs.items()}
            except UnresolvedReference as e:
                run.errors[step.id] = f"unresolved input {e.args[0]}"
                results[j] = (f"unresolved input {e.args[0]}", None)
                continue
            if step.skip_if_empty is not None and not x.get(step.skip_if_empty):
                run.calls.append({"tool": step.tool, "inputs": {}, "outcome": "skipped",
                                  "latency_ms": 0.0, "breaker_state": "closed"})
                results[j] = ("skipped", None)
                continue
            batch.append(j)
            inputs.append(x)
        if not batch:
            return results
        if runtime.tools[step.tool].spec.read_only:
            rs = runtime.call_many(step.tool, inputs, scopes,
                                   budgets=[todo[j].budget for j in batch])
        else:
            rs = [runtime.call(step.tool, x, scopes,
                               idempotency_key=idempotency_key(plan, step, todo[j].trigger),
                               budget=todo[j].budget)
                  for j, x in zip(batch, inputs, strict=True)]
        for j, r in zip(batch, rs, strict=True):
            run = todo[j]
            run.calls.append(r.record)
            ok = r.outcome in ("ok", "replayed")
            if not ok:
                run.errors[step.id] = r.error or r.outcome
            results[j] = ("ok" if ok else r.outcome), r.output
        return results

    active = runs
    for step in plan.steps:
        if not active:
            break
        going: list[_Run] = []
        need_fb: list[tuple[_Run, str]] = []
        for run, (outcome, out) in zip(active, call(step, active), strict=True):
            if outcome == "ok" and out is not None:
                run.outputs[step.id] = out
                going.append(run)
            elif outcome == "skipped":
                going.append(run)
            elif step.fallback and step.fallback in fallbacks:
                need_fb.append((run, outcome))
            elif step.optional:
                run.taken.append(f"step {step.id} failed ({outcome}): skipped (optional)")
                going.append(run)
            else:
                run.failed = step.id
        if need_fb:
            fb = fallbacks[step.fallback]  # type: ignore[index]
            fb_results = call(fb, [run for run, _ in need_fb])
            for (run, outcome), (fb_outcome, fb_out) in zip(need_fb, fb_results, strict=True):
                run.taken.append(f"step {step.id} failed ({outcome}): took fallback {fb.id}"
                                 + ("" if fb_outcome == "ok" else
                                    f", which failed ({fb_outcome})"))
                if fb_outcome == "ok" and fb_out is not None:
                    run.outputs[step.id] = fb_out  # later steps read it in the step's place
                    going.append(run)
                else:
                    run.failed = step.id
        keep = set(map(id, going))
        active = [run for run in active if id(run) in keep]  # in trigger order
    return [PlanRun(run.failed is None, run.outputs, run.calls, run.taken, run.failed,
                    run.errors) for run in runs]


# ---------------------------------------------------------------------- planner

class Trigger(NamedTuple):
    kind: str  # page_view | click | add_to_cart | order | scheduled | inventory
    user_id: str
    event_id: str
    ts: int
    sku: str | None = None


def plan_goals(trigger: Trigger, has_marketing_consent: bool, cart_size: int,
               configurable: bool) -> list[Goal]:
    """Which goals a trigger pursues, deterministically:

    - every user interaction and the scheduled refresh: ``refresh_feed``;
    - a cart add by a user who allows marketing: also ``push_offer`` (help them decide);
    - a view or click of a configurable product: also ``propose_configuration``.
    """
    goals: list[Goal] = []
    if trigger.kind in ("page_view", "click", "add_to_cart", "order", "scheduled"):
        goals.append("refresh_feed")
    if trigger.kind == "add_to_cart" and has_marketing_consent and cart_size > 0:
        goals.append("push_offer")
    if trigger.kind in ("page_view", "click") and configurable:
        goals.append("propose_configuration")
    return goals
