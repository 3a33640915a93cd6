"""The ``push_offer`` goal: a cart add, with marketing consent, may earn an offer.

The plan checks inventory and quotes a price; the policy pack judges the offer (stock,
price, discount, margin, frequency caps) at the largest discount on offer, and what its
price rules leave of that bounds the discounts the offer bandit may choose from
(``agent.offer_bandit``: Thompson sampling for revenue over the newest published
posteriors; without a bandit the discount is ``OFFER_DISCOUNT_PCT``); a granted proposal
goes to allocation by SKU (``agent.allocation``), which promises scarce stock to no more
users than it serves and writes the record. The proposal waits in the user's decision state
for its outcome (an order before it expires), which teaches the bandit.

With the enterprise adapters (``connectors.enterprise``) in the runtime, the price comes
from the pricing engine for the customer's ERP segment (``PRICED_OFFER_PLAN``; the customer
is named by pseudonym), falling back to the store's price when the engine cannot answer;
the offer expires when the quote does (if sooner), and a customer whose ERP credit left is
below the offer's price gets none.
"""

from __future__ import annotations

from typing import Any

from agent.allocation import Proposal
from agent.offer_bandit import allowed_arms, choose_arm
from agent.plans import AGENT_SCOPES, Plan, Step, run_plan
from agent.records import Records
from agent.review import hold
from features.score import MODEL_VERSION
from features.user_features import UserFeatures
from policies.evaluate import Candidates, UserContext
from policies.lifecycle import PolicyEngine
from policies.privacy import decision_id
from policies.review import review_needed

OFFER_DISCOUNT_PCT = 10.0
OFFER_TTL_MS = 24 * 3_600_000
MAX_SENT = 10  # offer times kept per user, for the frequency caps

OFFER_PLAN = Plan(name="offer-from-cart", version="1", goal="push_offer", steps=[
    Step(id="stock", tool="inventory_check", inputs={"skus": "trigger.skus"}),
    Step(id="quote", tool="pricing_quote",
         inputs={"sku": "trigger.sku", "discount_pct": "trigger.discount_pct"}),
])


PRICED_OFFER_PLAN = Plan(name="offer-from-cart-priced", version="1", goal="push_offer", steps=[
    Step(id="stock", tool="inventory_check", inputs={"skus": "trigger.skus"}),
    Step(id="customer", tool="erp_customer", inputs={"ref": "trigger.user_ref"},
         optional=True),
    Step(id="quote", tool="pricing_engine_quote", fallback="store_quote", inputs={
        "sku": "trigger.sku", "segment": "steps.customer.segment", "at": "trigger.ts"}),
], fallbacks=[Step(id="store_quote", tool="pricing_quote",
                   inputs={"sku": "trigger.sku", "discount_pct": "trigger.discount_pct"})])
PRICED_SCOPES = AGENT_SCOPES | {"erp:read"}


def decide_offer(ctx: Any, sent: tuple[int, ...], f: UserFeatures, sku: str, eng: PolicyEngine,
                 user: UserContext) -> tuple[tuple[int, ...], list[Any]]:
    """(the user's offer times now, outputs: a suppressed record or a ``Proposal``)."""
    records: Records = ctx.records
    did = decision_id("offer", records.user_ref(f.user_id), f.event_id)
    arms: tuple[float, ...] = getattr(ctx, "offer_arms", None) or (OFFER_DISCOUNT_PCT,)
    slot = getattr(ctx, "bandit", None)
    snap = slot.current(getattr(eng, "model_pins", {}).get("offer_bandit"), f.ts) \
        if slot is not None else None
    model = snap.version if snap is not None else (
        "offer-bandit-prior" if slot is not None else MODEL_VERSION)
    runtime = ctx.gate.runtime
    priced = "pricing_engine_quote" in runtime.tools
    plan = PRICED_OFFER_PLAN if priced else OFFER_PLAN
    budget = ctx.budget_of(f, eng) if hasattr(ctx, "budget_of") else None
    run = run_plan(plan, runtime, PRICED_SCOPES if priced else AGENT_SCOPES,
                   {"sku": sku, "skus": [sku], "event_id": f.event_id, "ts": f.ts,
                    "user_ref": records.user_ref(f.user_id), "discount_pct": max(arms)}, {},
                   budget)
    if not run.ok:
        return sent, [records.suppressed(
            did, "offer", f, plan, model, run.calls, None, [sku],
            f"no offer: step {run.failed_step} failed "
            f"({run.errors.get(run.failed_step or '', '')})", run.fallbacks)]
    quote = run.outputs["quote"]
    if "unit_price" in quote:  # the pricing engine's quote
        quote = {**quote, "price": quote["unit_price"]}
    available = run.outputs["stock"]["available"].get(sku)
    base = ctx.gate.candidates([sku])

    def judge(discount: float) -> Any:
        cands = Candidates(skus=[sku], categories=base.categories, brands=base.brands,
                           prices=[quote["price"]], available=[available],
                           discounts=[discount], min_ages=base.min_ages,
                           regions=base.regions, tops=base.tops)
        return eng.evaluate(user, "offer", cands, f.ts)

    outcome = judge(max(arms))
    r = outcome.result
    if r.suppressed or not r.allowed:
        why = "; ".join(f"{v.rule}: {v.reason}" for v in r.verdicts if v.effect == "deny")
        return sent, [records.suppressed(did, "offer", f, plan, model, run.calls,
                                         outcome, [sku], f"offer of {sku} refused by policy "
                                         f"({why})", run.fallbacks)]
    discount = r.discounts[0]
    how = "within the price policy"
    if slot is not None:
        allowed = allowed_arms(arms, discount)
        discount = choose_arm(snap, allowed, did)
        how = (f"chosen by {model} among {', '.join(f'{a:g}%' for a in allowed)} "
               f"within the price policy")
        if discount != r.discounts[0]:  # the verdicts of the offer as made
            outcome = judge(discount)
    customer = run.outputs.get("customer") or {}
    if customer:  # the ERP's word on credit: an offer the customer cannot pay is not made
        left = float(customer["credit_limit"]) - float(customer["credit_used"])
        if left < quote["price"] * (1 - discount / 100):
            return sent, [records.suppressed(
                did, "offer", f, plan, model, run.calls, outcome, [sku],
                f"offer of {sku} not sent: the customer's credit left ({left:g} "
                f"{customer['currency']}) is below its price", run.fallbacks)]
    rec = records.base(did, "offer", f, plan, model, False, run.calls, outcome,
                       [sku])
    rec["fallbacks"] = run.fallbacks
    rec["explanation"] = (f"because you added {sku} to your cart; {available} in stock; "
                          f"{discount:g}% {how}")
    # a quote from the pricing engine is valid until its own time: the offer too
    expires = min(f.ts + OFFER_TTL_MS, int(quote.get("valid_until") or f.ts + OFFER_TTL_MS))
    proposal = Proposal(sku, f.user_id, did, f.ts, max(expires, f.ts + 1), discount,
                        quote["price"], quote["currency"], int(available or 0), f.event_id,
                        rec)
    compiled = eng.packs.get(f"{outcome.result.pack}@{outcome.result.version}")
    reasons, deadline = review_needed(compiled.pack.rules if compiled else (), "offer", f.ts,
                                      discount_pct=discount, price=quote["price"],
                                      first_order=not f.purchased)
    if reasons and deadline is not None:  # a person decides first (agent.review)
        return (*sent, f.ts)[-MAX_SENT:], hold(
            "offer", f.user_id, sku, f.ts, deadline, reasons, proposal, rec,
            {"discount_pct": discount, "price": quote["price"], "currency": quote["currency"]},
            max_discount=r.discounts[0])
    return (*sent, f.ts)[-MAX_SENT:], [proposal]
