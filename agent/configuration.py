"""The ``propose_configuration`` goal: a view of a configurable product gets the valid,
in-stock option combination the user's attribute affinities like most (the configurator
tool, ``policies.configuration``), judged by the policy pack; the same choices are not sent
twice (recorded as unchanged)."""

from __future__ import annotations

from typing import Any

from agent.plans import AGENT_SCOPES, Plan, Step, run_plan
from agent.records import Records, record_out
from features.channels import CONFIGURATIONS
from features.events import Configuration, event_doc, outgoing_doc
from features.score import MODEL_VERSION
from features.user_features import UserFeatures
from policies.evaluate import UserContext
from policies.lifecycle import PolicyEngine
from policies.privacy import decision_id

MAX_CONFIGS = 8  # last proposals kept per user

CONFIG_PLAN = Plan(name="configure-viewed", version="1", goal="propose_configuration", steps=[
    Step(id="config", tool="configurator",
         inputs={"sku": "trigger.sku", "affinities": "features.attributes"}),
])


def decide_configuration(ctx: Any, configs: dict[str, tuple[Any, ...]], f: UserFeatures,
                         sku: str, eng: PolicyEngine, user: UserContext) -> list[Any]:
    """Outputs of one configuration decision; ``configs`` (sku → last proposed choices)
    is updated in place."""
    records: Records = ctx.records
    did = decision_id("config", records.user_ref(f.user_id), f.event_id)
    run = run_plan(CONFIG_PLAN, ctx.gate.runtime, AGENT_SCOPES,
                   {"sku": sku, "event_id": f.event_id}, {"attributes": f.attributes})
    if not run.ok:
        return [records.suppressed(did, "configuration", f, CONFIG_PLAN, MODEL_VERSION,
                                   run.calls, None, [sku], f"no configuration: step "
                                   f"{run.failed_step} failed "
                                   f"({run.errors.get(run.failed_step or '', '')})",
                                   run.fallbacks)]
    cfg = run.outputs["config"]
    choices = tuple(sorted(cfg["choices"].items()))
    shown = [f"{g}:{o}" for g, o in choices]
    if configs.get(sku) == choices:  # proposed already: recorded, not sent again
        rec = records.base(did, "configuration", f, CONFIG_PLAN, MODEL_VERSION, False,
                           run.calls, None, [sku])
        return [record_out({**rec, "fallbacks": run.fallbacks,
                            "output": {"sku": sku, "choices": shown, "unchanged": True},
                            "explanation": f"no configuration sent: the same choices for "
                                           f"{sku} were proposed already"})]
    base = ctx.gate.candidates([sku])
    outcome = eng.evaluate(user, "configure", base, f.ts)
    r = outcome.result
    if r.suppressed or not r.allowed:
        why = "; ".join(f"{v.rule}: {v.reason}" for v in r.verdicts if v.effect == "deny")
        return [records.suppressed(did, "configuration", f, CONFIG_PLAN, MODEL_VERSION,
                                   run.calls, outcome, [sku],
                                   f"configuration refused by policy ({why})", run.fallbacks)]
    configs[sku] = choices
    if len(configs) > MAX_CONFIGS:
        configs.pop(next(iter(configs)))
    conf = event_doc(Configuration, id=did, ts=f.ts, user_id=f.user_id, sku=sku,
                     choices=dict(choices), price=cfg["price"], currency="EUR",
                     trigger_event_id=f.event_id)
    rec = records.base(did, "configuration", f, CONFIG_PLAN, MODEL_VERSION, False, run.calls,
                       outcome, [sku])
    liked = f.attributes.split(",")[0].rsplit(":", 1)[0] if f.attributes else "your taste"
    return [outgoing_doc(CONFIGURATIONS.name, f.user_id, conf),
            record_out({**rec, "fallbacks": run.fallbacks,
                        "output": {"sku": sku, "choices": shown},
                        "explanation": f"because you viewed {sku}: options matching {liked}, "
                                       f"compatible and in stock"})]
