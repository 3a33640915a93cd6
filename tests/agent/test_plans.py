"""Plans as data: references, fallbacks, optional steps, idempotent replays, the planner."""

from agent.plans import Plan, Step, Trigger, idempotency_key, plan_goals, run_plan
from agent.tools import MemoryLedger, Tool, ToolRuntime, ToolSpec

S = frozenset({"read", "write"})


def runtime(fail: set[str], ledger=None, calls=None) -> ToolRuntime:
    calls = calls if calls is not None else []

    def make(name):
        def fn(x):
            calls.append(name)
            if name in fail:
                raise RuntimeError(f"{name} down")
            return {"items": [f"{name}-{x.get('n', 0)}"], "n": x.get("n", 0) + 1}
        return fn

    specs = [("primary", True), ("backup", True), ("extra", True), ("send", False)]
    return ToolRuntime([Tool(ToolSpec(name=n, description=n, scope="write" if not ro else
                                      "read", read_only=ro, max_attempts=1), make(n))
                        for n, ro in specs], ledger=ledger)


PLAN = Plan(name="feed", version="3", goal="refresh_feed", steps=[
    Step(id="cands", tool="primary", inputs={"n": "features.n"}, fallback="cands_fb"),
    Step(id="more", tool="extra", inputs={"n": "steps.cands.n"}, optional=True),
    Step(id="send", tool="send", inputs={"n": "const:7"}),
], fallbacks=[Step(id="cands_fb", tool="backup", inputs={"n": "features.n"})])


def test_happy_path_resolves_references_in_order():
    run = run_plan(PLAN, runtime(set()), S, {"event_id": "e1"}, {"n": 1})
    assert run.ok and run.fallbacks == [] and run.outputs["more"]["items"] == ["extra-2"]
    assert [c["tool"] for c in run.calls] == ["primary", "extra", "send"]


def test_failed_step_takes_its_fallback_and_later_steps_use_its_output():
    run = run_plan(PLAN, runtime({"primary"}), S, {"event_id": "e1"}, {"n": 1})
    assert run.ok and run.outputs["cands"]["items"] == ["backup-1"]
    assert run.fallbacks == ["step cands failed (error): took fallback cands_fb"]
    assert [c["outcome"] for c in run.calls] == ["error", "ok", "ok", "ok"]


def test_optional_step_failure_is_recorded_and_skipped():
    run = run_plan(PLAN, runtime({"extra"}), S, {"event_id": "e1"}, {"n": 1})
    assert run.ok and "more" not in run.outputs
    assert run.fallbacks == ["step more failed (error): skipped (optional)"]


def test_plan_fails_when_step_and_fallback_fail():
    run = run_plan(PLAN, runtime({"primary", "backup"}), S, {"event_id": "e1"}, {"n": 1})
    assert not run.ok and run.failed_step == "cands"
    assert run.fallbacks == ["step cands failed (error): took fallback cands_fb, which failed "
                             "(error)"]


def test_missing_scope_and_unresolved_inputs_fail_the_step():
    run = run_plan(PLAN, runtime(set()), frozenset({"read"}), {"event_id": "e1"}, {"n": 1})
    assert not run.ok and run.failed_step == "send"  # no write scope
    run = run_plan(PLAN, runtime(set()), S, {"event_id": "e1"}, {})
    assert not run.ok and run.failed_step == "cands"


def test_side_effects_are_not_repeated_when_a_trigger_is_replayed():
    ledger, calls = MemoryLedger(), []
    for _ in range(2):  # the same trigger twice, as after a recovery
        run = run_plan(PLAN, runtime(set(), ledger, calls), S, {"event_id": "e1"}, {"n": 1})
    assert run.ok and calls.count("send") == 1
    assert run.calls[-1]["outcome"] == "replayed"
    assert run.calls[-1]["idempotency_key"] == idempotency_key(PLAN, PLAN.steps[2], {"event_id":
                                                                                  "e1"})
    other = run_plan(PLAN, runtime(set(), ledger, calls), S, {"event_id": "e2"}, {"n": 1})
    assert other.ok and calls.count("send") == 2  # another trigger acts again


def test_planner_is_deterministic():
    t = Trigger("add_to_cart", "u1", "e1", 0, "A")
    assert plan_goals(t, True, 1, False) == ["refresh_feed", "push_offer"]
    assert plan_goals(t, False, 1, False) == ["refresh_feed"]
    assert plan_goals(Trigger("page_view", "u1", "e2", 0, "B"), True, 0, True) == [
        "refresh_feed", "propose_configuration"]
    assert plan_goals(Trigger("inventory", "u1", "e3", 0, "B"), True, 0, True) == []


def test_a_step_with_nothing_to_start_from_is_skipped_not_called():
    plan = Plan(name="cands", version="1", goal="refresh_feed", steps=[
        Step(id="a", tool="primary", inputs={"n": "features.seeds"}, optional=True,
             skip_if_empty="n"),
        Step(id="b", tool="extra", inputs={"n": "features.k"}),
    ])
    calls: list[str] = []
    run = run_plan(plan, runtime(set(), calls=calls), S, {"event_id": "e"},
                   {"seeds": 0, "k": 1})
    assert run.ok and calls == ["extra"] and "a" not in run.outputs
    assert [c["outcome"] for c in run.calls] == ["skipped", "ok"]
    run = run_plan(plan, runtime(set(), calls=calls), S, {"event_id": "e"},
                   {"seeds": 5, "k": 1})
    assert calls == ["extra", "primary", "extra"] and run.outputs["a"]["n"] == 6


def test_a_plan_run_for_many_triggers_equals_runs_one_by_one():
    """run_plans batches each step's tool calls; per trigger, outputs, records (but their
    latency), fallbacks, failures and errors are what run_plan gives for that trigger."""
    from agent.plans import run_plans

    def make(name: str, bad: set[int]):
        def fn(x):
            if x.get("n") in bad:
                raise RuntimeError(f"{name} fails on {x['n']}")
            return {"items": [f"{name}-{x.get('n')}"], "n": x.get("n", 0) + 1}
        return fn

    def rt() -> ToolRuntime:
        tools = [("primary", {3, 5}), ("backup", {5}), ("extra", {2, 4}), ("send", set())]
        return ToolRuntime([Tool(ToolSpec(name=n, description=n, scope="read", max_attempts=1,
                                          breaker_fail_max=100, trusted=True), make(n, bad))
                            for n, bad in tools])

    plan = Plan(name="p", version="1", goal="refresh_feed", steps=[
        Step(id="cands", tool="primary", inputs={"n": "features.n"}, fallback="cands_fb"),
        Step(id="more", tool="extra", inputs={"n": "steps.cands.n", "xs": "features.xs"},
             optional=True, skip_if_empty="xs"),
        Step(id="last", tool="send", inputs={"n": "features.m"}),
    ], fallbacks=[Step(id="cands_fb", tool="backup", inputs={"n": "features.n"})])
    feats = [{"n": n, "xs": [1] if n % 2 else [], **({"m": n} if n != 7 else {})}
             for n in range(9)]
    trigs = [{"event_id": f"e{n}"} for n in range(9)]
    many = run_plans(plan, rt(), frozenset({"read"}), trigs, feats)
    ones = [run_plan(plan, rt(), frozenset({"read"}), t, f)
            for t, f in zip(trigs, feats, strict=True)]

    def strip(run):
        return (run.ok, run.outputs, [{k: v for k, v in c.items() if k != "latency_ms"}
                                      for c in run.calls], run.fallbacks, run.failed_step,
                run.errors)

    assert [strip(r) for r in many] == [strip(r) for r in ones]
    assert {r.ok for r in many} == {True, False}  # the cases cover both ends
    assert any(r.fallbacks for r in many) and any(r.errors for r in many if r.ok)
