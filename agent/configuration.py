"""The ``propose_configuration`` goal: a view of a configurable product gets the valid,
in-stock option combination the user's attribute affinities like most (the configurator
tool, ``policies.configuration``), judged by the policy pack; the same choices are not sent
twice (recorded as unchanged).

With the enterprise adapters (``connectors.enterprise``) in the runtime, the product's
structure comes from the PLM and its lead time from the MES (``PLM_CONFIG_PLAN``): the
combination must also ship within the delivery window, and the configuration carries the
MES's promised ship date. When the PLM or the MES cannot answer, the catalog's options
decide (``CONFIG_PLAN``), recorded as a fallback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.plans import AGENT_SCOPES, Plan, Step, run_plan
from agent.records import Records, record_out
from agent.review import hold
from features.channels import CONFIGURATIONS
from features.events import Configuration, event_doc, outgoing_doc
from features.score import MODEL_VERSION
from features.user_features import UserFeatures
from policies.evaluate import UserContext
from policies.lifecycle import PolicyEngine
from policies.privacy import decision_id
from policies.review import review_needed

MAX_CONFIGS = 8  # last proposals kept per user
WINDOW_DAYS = 21  # the longest lead time a configuration may promise (ctx.window_days)

CONFIG_PLAN = Plan(name="configure-viewed", version="1", goal="propose_configuration", steps=[
    Step(id="config", tool="configurator",
         inputs={"sku": "trigger.sku", "affinities": "features.attributes"}),
])


PLM_CONFIG_PLAN = Plan(name="configure-viewed-plm", version="1", goal="propose_configuration",
                       steps=[
    Step(id="plm", tool="plm_product_structure", inputs={"sku": "trigger.sku"}),
    Step(id="base", tool="mes_lead_time", inputs={"sku": "trigger.sku", "from_day": "trigger.day"}),
    Step(id="config", tool="configurator_plm", inputs={
        "sku": "trigger.sku", "option_groups": "steps.plm.option_groups",
        "compatibility": "steps.plm.compatibility", "base_price": "steps.plm.base_price",
        "affinities": "features.attributes", "base_days": "steps.base.lead_time_days",
        "window_days": "trigger.window_days"}),
    Step(id="promise", tool="mes_lead_time", optional=True, inputs={
        "sku": "trigger.sku", "from_day": "trigger.day", "options": "steps.config.options"}),
])
PLM_SCOPES = AGENT_SCOPES | {"plm:read", "mes:read"}


def _day(ts: int) -> str:
    """The UTC day of an event time: the day a lead time counts from."""
    return datetime.fromtimestamp(ts / 1000, UTC).date().isoformat()


def _plan_run(ctx: Any, f: UserFeatures, sku: str, budget: Any) -> tuple[Plan, Any, list[str]]:
    """(the plan that decided, its run, fallbacks taken before it)."""
    runtime = ctx.gate.runtime
    trigger = {"sku": sku, "event_id": f.event_id}
    features = {"attributes": f.attributes}
    if "plm_product_structure" not in runtime.tools:
        return CONFIG_PLAN, run_plan(CONFIG_PLAN, runtime, AGENT_SCOPES, trigger, features,
                                     budget), []
    run = run_plan(PLM_CONFIG_PLAN, runtime, PLM_SCOPES,
                   {**trigger, "day": _day(f.ts),
                    "window_days": getattr(ctx, "window_days", WINDOW_DAYS)}, features, budget)
    if run.ok or run.failed_step == "config":  # "config": no combination fits: an answer
        return PLM_CONFIG_PLAN, run, []
    why = [f"step {run.failed_step} of {PLM_CONFIG_PLAN.name} failed "
           f"({run.errors.get(run.failed_step or '', '')}): took {CONFIG_PLAN.name}"]
    store = run_plan(CONFIG_PLAN, runtime, AGENT_SCOPES, trigger, features, budget)
    return CONFIG_PLAN, store._replace(calls=run.calls + store.calls), why


def decide_configuration(ctx: Any, configs: dict[str, tuple[Any, ...]], f: UserFeatures,
                         sku: str, eng: PolicyEngine, user: UserContext) -> list[Any]:
    """Outputs of one configuration decision; ``configs`` (sku → last proposed choices)
    is updated in place."""
    records: Records = ctx.records
    did = decision_id("config", records.user_ref(f.user_id), f.event_id)
    budget = ctx.budget_of(f, eng) if hasattr(ctx, "budget_of") else None
    plan, run, before = _plan_run(ctx, f, sku, budget)
    fallbacks = before + run.fallbacks
    if not run.ok:
        return [records.suppressed(did, "configuration", f, plan, MODEL_VERSION,
                                   run.calls, None, [sku], f"no configuration: step "
                                   f"{run.failed_step} failed "
                                   f"({run.errors.get(run.failed_step or '', '')})",
                                   fallbacks)]
    cfg = run.outputs["config"]
    promise = run.outputs.get("promise") or {}
    ship = ({"ship_date": promise["ship_date"], "lead_time_days": promise["lead_time_days"]}
            if promise.get("ship_date") else {})
    choices = tuple(sorted(cfg["choices"].items()))
    shown = [f"{g}:{o}" for g, o in choices]
    if configs.get(sku) == choices:  # proposed already: recorded, not sent again
        rec = records.base(did, "configuration", f, plan, MODEL_VERSION, False,
                           run.calls, None, [sku])
        return [record_out({**rec, "fallbacks": fallbacks,
                            "output": {"sku": sku, "choices": shown, "unchanged": True},
                            "explanation": f"no configuration sent: the same choices for "
                                           f"{sku} were proposed already"})]
    base = ctx.gate.candidates([sku])
    outcome = eng.evaluate(user, "configure", base, f.ts)
    r = outcome.result
    if r.suppressed or not r.allowed:
        why = "; ".join(f"{v.rule}: {v.reason}" for v in r.verdicts if v.effect == "deny")
        return [records.suppressed(did, "configuration", f, plan, MODEL_VERSION,
                                   run.calls, outcome, [sku],
                                   f"configuration refused by policy ({why})", fallbacks)]
    configs[sku] = choices
    if len(configs) > MAX_CONFIGS:
        configs.pop(next(iter(configs)))
    conf = event_doc(Configuration, id=did, ts=f.ts, user_id=f.user_id, sku=sku,
                     choices=dict(choices), price=cfg["price"], currency="EUR",
                     trigger_event_id=f.event_id, **ship)
    rec = records.base(did, "configuration", f, plan, MODEL_VERSION, False, run.calls,
                       outcome, [sku])
    liked = f.attributes.split(",")[0].rsplit(":", 1)[0] if f.attributes else "your taste"
    when = f", ships {ship['ship_date']}" if ship else ""
    rec = {**rec, "fallbacks": fallbacks, "output": {"sku": sku, "choices": shown, **ship},
           "explanation": f"because you viewed {sku}: options matching {liked}, "
                          f"compatible and in stock{when}"}
    compiled = eng.packs.get(f"{r.pack}@{r.version}")
    reasons, deadline = review_needed(compiled.pack.rules if compiled else (), "configure",
                                      f.ts, price=cfg["price"],
                                      lead_time_days=ship.get("lead_time_days"),
                                      first_order=not f.purchased)
    if reasons and deadline is not None:  # a person decides first (agent.review)
        return hold("configuration", f.user_id, sku, f.ts, deadline, reasons, conf, rec,
                    {"choices": shown, "price": cfg["price"], **ship})
    return [outgoing_doc(CONFIGURATIONS.name, f.user_id, conf), record_out(rec)]
