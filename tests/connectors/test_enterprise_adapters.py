"""The enterprise adapters (connectors.enterprise) against the reference service running
as a real process on loopback (scripts/enterprise_service.py): normal answers, latency over
the timeout, error bursts through the breaker, the retry budget, prices against cost
budgets, idempotent reservations across runtimes, malformed answers, capacity changes."""

from __future__ import annotations

import time

import httpx
import pytest

from agent.cost_budget import CostLedger
from agent.plans import Plan, Step, run_plan
from agent.tools import MemoryLedger, ToolRuntime
from connectors.enterprise import ENTERPRISE_SCOPES, EnterpriseClient, enterprise_tools
from policies.pack import CostBudgets

ALL = ENTERPRISE_SCOPES


@pytest.fixture
def service(enterprise_url):
    """The service with every fault and price switched off, before and after a test."""
    off = {"family": "*", "latency_ms": 0, "error_rate": 0, "malformed_rate": 0, "price": 0}
    httpx.put(f"{enterprise_url}/admin/faults", json=off).raise_for_status()
    yield enterprise_url
    httpx.put(f"{enterprise_url}/admin/faults", json=off).raise_for_status()


def faults(url: str, **switches) -> None:
    httpx.put(f"{url}/admin/faults", json=switches).raise_for_status()


def stats(url: str) -> dict:
    return httpx.get(f"{url}/admin/stats").json()


def runtime(url: str, ledger=None, **kw) -> ToolRuntime:
    return ToolRuntime(enterprise_tools(EnterpriseClient(url, kw.pop("timeout_ms", 500)),
                                        timeout_ms=kw.pop("tool_timeout_ms", 500), **kw),
                       ledger=ledger)


def configurable_sku(rt: ToolRuntime) -> str:
    for i in range(60):
        r = rt.call("plm_product_structure", {"sku": f"SKU{i:06d}"}, ALL)
        if r.outcome == "ok" and r.output["configurable"]:
            return r.output["sku"]
    raise AssertionError("no configurable product among the first 60")


def test_each_adapter_answers_within_its_contract(service):
    rt = runtime(service)
    sku = configurable_sku(rt)
    plm = rt.call("plm_product_structure", {"sku": sku}, ALL).output
    assert {g["group_id"] for g in plm["option_groups"]} == {"frame", "color", "size"}
    assert {"when": "frame:carbon", "requires": [], "excludes": ["color:red"]} in plm[
        "compatibility"]
    assert any(b["component_sku"] == "MAT-carbon" for b in plm["bom"])
    lead = rt.call("mes_lead_time", {"sku": sku, "qty": 1, "from_day": "2026-12-01"}, ALL)
    carbon = rt.call("mes_lead_time", {"sku": sku, "qty": 1, "from_day": "2026-12-01",
                                       "options": ["frame:carbon"]}, ALL)
    assert lead.outcome == carbon.outcome == "ok"
    assert carbon.output["lead_time_days"] > lead.output["lead_time_days"] >= 1
    cust = rt.call("erp_customer", {"ref": "pseudonym-1"}, ALL).output
    assert cust["segment"] in ("standard", "gold", "b2b") and cust["credit_limit"] > 0
    stock = rt.call("erp_stock", {"sku": sku}, ALL).output
    assert stock["available"] == stock["on_hand"] - stock["reserved"]
    q = rt.call("pricing_engine_quote", {"sku": sku, "segment": "b2b", "at": 1_000,
                                         "options": {"frame": "carbon"}}, ALL)
    assert q.outcome == "ok" and q.output["valid_until"] == 901_000
    assert q.output["unit_price"] == round((plm["base_price"] + 400.0) * 0.9, 2)
    assert "_cost" not in q.output
    missing = rt.call("plm_product_structure", {"sku": "NO-SUCH-SKU"}, ALL)
    assert missing.outcome == "error" and missing.error.startswith("not found")
    assert rt.breakers["plm_product_structure"].current_state == "closed"  # "none" is no fault
    assert rt.call("erp_customer", {"ref": "x"}, frozenset()).outcome == "unauthorized"


def test_latency_over_the_timeout_is_a_timeout_not_a_wait(service):
    rt = runtime(service, tool_timeout_ms=100, max_attempts=1)
    faults(service, family="pricing", latency_ms=600)
    t0 = time.monotonic()
    r = rt.call("pricing_engine_quote", {"sku": "SKU000001"}, ALL)
    assert r.outcome == "timeout" and time.monotonic() - t0 < 0.5
    faults(service, family="pricing", latency_ms=0)
    assert rt.call("pricing_engine_quote", {"sku": "SKU000001"}, ALL).outcome == "ok"


def test_an_error_burst_opens_the_breaker_which_closes_when_the_service_recovers(service):
    rt = runtime(service, max_attempts=1, breaker_fail_max=3, breaker_reset_s=1.0)
    faults(service, family="erp", error_rate=1.0)
    outcomes = [rt.call("erp_customer", {"ref": f"u{i}"}, ALL).outcome for i in range(5)]
    assert outcomes[:2] == ["error", "error"] and outcomes[3:] == ["breaker_open"] * 2
    before = stats(service)["calls"]["erp"]
    assert rt.call("erp_customer", {"ref": "u9"}, ALL).outcome == "breaker_open"
    assert stats(service)["calls"]["erp"] == before  # an open breaker calls nothing
    faults(service, family="erp", error_rate=0.0)
    time.sleep(1.2)
    assert rt.call("erp_customer", {"ref": "u9"}, ALL).outcome == "ok"
    assert rt.breakers["erp_customer"].current_state == "closed"


def test_the_retry_budget_stops_retries_amplifying_an_outage(service):
    rt = runtime(service, max_attempts=3, retry_budget=2, breaker_fail_max=100)
    faults(service, family="mes", error_rate=1.0)
    before = stats(service)["calls"]["mes"]
    x = {"sku": "SKU000001", "from_day": "2026-12-01"}
    first = rt.call("mes_lead_time", x, ALL)
    assert first.outcome == "error" and first.record["attempts"] == 3  # 1 call + 2 retries
    assert "retry_budget_exhausted" not in first.record
    assert stats(service)["calls"]["mes"] - before == 3
    second = rt.call("mes_lead_time", x, ALL)  # budget spent: no retry
    assert second.outcome == "error" and second.record["retry_budget_exhausted"] is True
    assert "attempts" not in second.record
    assert stats(service)["calls"]["mes"] - before == 4


def test_malformed_answers_are_rejected_by_the_schema(service):
    rt = runtime(service, max_attempts=1, breaker_fail_max=100)
    faults(service, family="*", malformed_rate=1.0)
    for tool, x in [("plm_product_structure", {"sku": "SKU000001"}),
                    ("mes_lead_time", {"sku": "SKU000001", "from_day": "2026-12-01"}),
                    ("erp_customer", {"ref": "u1"}),
                    ("pricing_engine_quote", {"sku": "SKU000001"})]:
        r = rt.call(tool, x, ALL)
        assert r.outcome == "error" and r.output is None, (tool, r)
        assert "validation error" in r.error, (tool, r.error)


def test_prices_per_call_are_recorded_and_each_budget_refuses_what_it_cannot_afford(service):
    faults(service, family="pricing", price=0.02)
    rt = runtime(service, costs={"pricing": 0.02})
    ledger = CostLedger(CostBudgets(per_decision=0.05, per_user=0.07, per_user_period_s=60,
                                    per_period=0.13, period_s=3600))
    x = {"sku": "SKU000001"}

    def decide(user: str, ts: int) -> list[str]:
        b = ledger.budget(user, ts)
        return [rt.call("pricing_engine_quote", x, ALL, budget=b).outcome for _ in range(3)]

    before = stats(service)["calls"]["pricing"]
    assert decide("a", 0) == ["ok", "ok", "over_budget"]  # per decision: 2 x 0.02
    assert decide("a", 1_000) == ["ok", "over_budget", "over_budget"]  # per user: 0.07
    assert decide("a", 61_000) == ["ok", "ok", "over_budget"]  # the user's next minute
    assert decide("b", 62_000) == ["ok", "over_budget", "over_budget"]  # per period: 0.13
    assert stats(service)["calls"]["pricing"] - before == 6  # refused calls were not made
    assert round(ledger.spent_total, 6) == 0.12 and ledger.refused == 6
    r = rt.call("pricing_engine_quote", x, ALL, budget=ledger.budget("c", 63_000))
    assert r.outcome == "over_budget" and r.record["budget"].startswith("per_period")
    ok = rt.call("pricing_engine_quote", x, ALL)
    assert ok.record["cost"] == 0.02


def test_the_reported_price_wins_over_the_declared_one(service):
    faults(service, family="erp", price=0.5)
    rt = runtime(service, costs={"erp": 0.1})
    assert rt.call("erp_customer", {"ref": "u1"}, ALL).record["cost"] == 0.5


def test_an_over_budget_step_takes_its_fallback(service):
    faults(service, family="pricing", price=1.0)
    rt = runtime(service, costs={"pricing": 1.0})
    plan = Plan(name="quote", version="1", goal="push_offer",
                steps=[Step(id="q", tool="pricing_engine_quote",
                            inputs={"sku": "trigger.sku"}, fallback="stock")],
                fallbacks=[Step(id="stock", tool="erp_stock", inputs={"sku": "trigger.sku"})])
    budget = CostLedger(CostBudgets(per_decision=0.5)).budget("u", 0)
    run = run_plan(plan, rt, ALL, {"sku": "SKU000001"}, {}, budget=budget)
    assert run.ok and "available" in run.outputs["q"]
    assert [c["outcome"] for c in run.calls] == ["over_budget", "ok"]
    assert run.fallbacks == ["step q failed (over_budget): took fallback stock"]


@pytest.mark.redis
def test_reservations_are_idempotent_across_runtimes_and_released_by_compensation(
        service, redis_url, redis_client):
    from connectors.redis_ledger import RedisLedger

    rt = runtime(service, ledger=RedisLedger(redis_url))
    sku = "SKU000002"
    start = rt.call("erp_stock", {"sku": sku}, ALL).output
    x = {"sku": sku, "qty": 1, "reference": "offer:abc", "expires_at": 5_000}
    first = rt.call("erp_reserve_stock", x, ALL, idempotency_key="offer:abc:reserve")
    assert first.outcome == "ok" and first.output["status"] == "held"
    calls = stats(service)["calls"]["erp"]
    # a resumed process with the same ledger: replayed from the ledger, the ERP not called
    again = runtime(service, ledger=RedisLedger(redis_url)).call(
        "erp_reserve_stock", x, ALL, idempotency_key="offer:abc:reserve")
    assert again.outcome == "replayed" and again.output == first.output
    assert stats(service)["calls"]["erp"] == calls
    # a process whose ledger was lost: the ERP dedups by the key, one reservation stays
    lost = runtime(service, ledger=MemoryLedger()).call(
        "erp_reserve_stock", x, ALL, idempotency_key="offer:abc:reserve")
    assert lost.outcome == "ok" and lost.output == first.output
    after = rt.call("erp_stock", {"sku": sku}, ALL).output
    assert after["reserved"] == start["reserved"] + 1
    rid = first.output["reservation_id"]
    rel = rt.call("erp_release", {"reservation_id": rid}, ALL, idempotency_key=f"{rid}:release")
    assert rel.outcome == "ok" and rel.output["status"] == "released"
    assert rt.call("erp_stock", {"sku": sku}, ALL).output["reserved"] == start["reserved"]
    big = rt.call("erp_reserve_stock", {**x, "qty": 10_000}, ALL, idempotency_key="k-big")
    assert big.outcome == "error" and big.error.startswith("not found")  # 409: no stock


def test_promised_dates_follow_capacity_changes(service):
    rt = runtime(service)
    x = {"sku": "SKU000004", "qty": 5, "from_day": "2027-01-10"}
    first = rt.call("mes_lead_time", x, ALL).output
    line, day = first["line"], first["ship_date"]
    httpx.put(f"{service}/mes/v1/capacity/{line}/{day}", json={"units": 2}).raise_for_status()
    later = rt.call("mes_lead_time", x, ALL).output
    assert later["ship_date"] > day and later["lead_time_days"] == first["lead_time_days"] + 1
    httpx.put(f"{service}/mes/v1/capacity/{line}/{day}", json={"units": 20}).raise_for_status()
    assert rt.call("mes_lead_time", x, ALL).output["ship_date"] == day


def test_the_openapi_document_describes_every_route():
    from scripts.enterprise_service import OPENAPI, Enterprise, build_app

    app = build_app(Enterprise(items=10))
    served = {r.path: {m.lower() for m in r.methods if m != "HEAD"} for r in app.routes}
    documented = {p: set(ops) for p, ops in OPENAPI["paths"].items()}
    assert served == documented
