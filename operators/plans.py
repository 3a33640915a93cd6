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

>>> from operators.tools import Tool, ToolRuntime, ToolSpec
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

from operators.tools import ToolRuntime

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
    outputs: dict[str, dict]
    calls: list[dict]  # tool call records (features.events.ToolCall fields)
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


def _resolve(ref: str, trigger: dict, features: dict, outputs: dict[str, dict]) -> Any:
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


def idempotency_key(plan: Plan, step: Step, trigger: dict) -> str:
    """Deterministic per (plan version, step, trigger event): the same after a replay."""
    raw = f"{plan.name}@{plan.version}:{step.id}:{trigger.get('event_id', '')}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def run_plan(plan: Plan, runtime: ToolRuntime, scopes: frozenset[str], trigger: dict,
             features: dict) -> PlanRun:
    outputs: dict[str, dict] = {}
    calls: list[dict] = []
    taken: list[str] = []
    errors: dict[str, str] = {}
    fallbacks = {s.id: s for s in plan.fallbacks}

    def call(step: Step) -> tuple[str, dict | None]:
        try:
            inputs = {k: _resolve(v, trigger, features, outputs) for k, v in step.inputs.items()}
        except UnresolvedReference as e:
            errors[step.id] = f"unresolved input {e.args[0]}"
            return f"unresolved input {e.args[0]}", None
        if step.skip_if_empty is not None and not inputs.get(step.skip_if_empty):
            calls.append({"tool": step.tool, "inputs": {}, "outcome": "skipped",
                          "latency_ms": 0.0, "breaker_state": "closed"})
            return "skipped", None
        read_only = runtime.tools[step.tool].spec.read_only
        key = None if read_only else idempotency_key(plan, step, trigger)
        r = runtime.call(step.tool, inputs, scopes, idempotency_key=key)
        calls.append(r.record)
        ok = r.outcome in ("ok", "replayed")
        if not ok:
            errors[step.id] = r.error or r.outcome
        return ("ok" if ok else r.outcome), r.output

    for step in plan.steps:
        outcome, out = call(step)
        if outcome == "ok" and out is not None:
            outputs[step.id] = out
            continue
        if outcome == "skipped":
            continue
        fb = fallbacks.get(step.fallback) if step.fallback else None
        if fb is not None:
            fb_outcome, fb_out = call(fb)
            taken.append(f"step {step.id} failed ({outcome}): took fallback {fb.id}"
                         + ("" if fb_outcome == "ok" else f", which failed ({fb_outcome})"))
            if fb_outcome == "ok" and fb_out is not None:
                outputs[step.id] = fb_out  # later steps read the fallback's output in its place
                continue
        elif step.optional:
            taken.append(f"step {step.id} failed ({outcome}): skipped (optional)")
            continue
        return PlanRun(False, outputs, calls, taken, step.id, errors)
    return PlanRun(True, outputs, calls, taken, None, errors)


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
