"""The flow with the enterprise adapters (BESPOKE_ENTERPRISE_URL) against the reference
service as a real process: configurations from the PLM with the MES's promised ship dates,
offers priced by the pricing engine for the customer's ERP segment, every priced call's
cost in the decision records, and the pack's cost budgets refusing what they cannot afford
(the plan's fallback then decides)."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict

import httpx
import pytest

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator, write_jsonl
from connectors.policy_packs import DEFAULT_DIR
from flows.main import RunConfig, run
from flows.settings import Settings

PER_DECISION, PER_USER = 0.05, 0.08
PRICES = {"plm": 0.01, "mes": 0.005, "erp": 0.004, "pricing": 0.02}


@pytest.fixture(scope="module")
def enterprise_run(enterprise_url, tmp_path_factory):
    d = tmp_path_factory.mktemp("enterprise")
    packs = d / "packs"
    packs.mkdir()
    (packs / "default.toml").write_text(
        (DEFAULT_DIR / "default.toml").read_text()
        + f"\n[budgets]\nper_decision = {PER_DECISION}\nper_user = {PER_USER}\n"
          "per_user_period_s = 86400\n")
    # the service's catalog is the generator's of the same seed and size
    write_jsonl(str(d / "events.jsonl"), Generator(GenConfig(
        seed=42, items=200, users=120, events=12_000, malformed_rate=0.0)).records())
    for fam, price in PRICES.items():
        httpx.put(f"{enterprise_url}/admin/faults",
                  json={"family": fam, "price": price}).raise_for_status()
    before = httpx.get(f"{enterprise_url}/admin/stats").json()
    try:
        run(RunConfig(inputs=[str(d / "events.jsonl")], output=str(d / "out"),
                      store=f"memory://{uuid.uuid4().hex}",
                      settings=Settings(_env_file=None, progress_every_s=0,
                                        policy_dir=str(packs), enterprise_url=enterprise_url,
                                        enterprise_timeout_ms=1000,
                                        # declared as well: a budget can refuse the first
                                        # call of a tool before any price was reported
                                        enterprise_costs=PRICES)))
    finally:
        httpx.put(f"{enterprise_url}/admin/faults",
                  json={"family": "*", "price": 0}).raise_for_status()
    out = d / "out"
    after = httpx.get(f"{enterprise_url}/admin/stats").json()
    records = [json.loads(b) for b in read_channel(out, "decision_records")]
    configs = [json.loads(b) for b in read_channel(out, "configurations")]
    offers = [json.loads(b) for b in read_channel(out, "offers")]
    reservations = {k: after["reservations"].get(k, 0) - before["reservations"].get(k, 0)
                    for k in ("held", "released")}
    return records, configs, offers, reservations


def test_configurations_come_from_the_plm_with_the_mes_ship_date(enterprise_run):
    records, configs, _, _ = enterprise_run
    dated = [c for c in configs if c.get("ship_date")]
    assert len(dated) >= 10, len(configs)
    for c in dated:
        assert c["lead_time_days"] >= 2 and c["ship_date"] > "2023-11-14"
        assert not (c["choices"].get("frame") == "carbon" and c["choices"].get("color") == "red")
    by_id = {r["decision_id"]: r for r in records}
    rec = by_id[dated[0]["id"]]
    assert rec["plan"] == "configure-viewed-plm"
    assert [c["tool"] for c in rec["tool_calls"]][:4] == [
        "plm_product_structure", "mes_lead_time", "configurator_plm", "mes_lead_time"]
    assert rec["output"]["ship_date"] == dated[0]["ship_date"]


def test_offers_are_priced_by_the_engine_and_calls_carry_their_cost(enterprise_run):
    records, *_ = enterprise_run
    offers = [r for r in records if r["decision_type"] == "offer"]
    assert offers
    priced = [r for r in offers if r["plan"] == "offer-from-cart-priced"]
    assert len(priced) == len(offers)
    quoted = [c for r in priced for c in r["tool_calls"]
              if c["tool"] == "pricing_engine_quote" and c["outcome"] == "ok"]
    assert quoted and all(c["cost"] == PRICES["pricing"] for c in quoted)
    for r in records:
        costs = [c.get("cost", 0.0) for c in r["tool_calls"]]
        assert r.get("cost") == (round(sum(costs), 6) if any(costs) else None)


def test_cost_budgets_hold_and_refusals_take_the_fallback(enterprise_run):
    records, *_ = enterprise_run
    spent: dict[tuple[str, int], float] = defaultdict(float)
    for r in records:  # the ERP reservation of a granted offer is not the plan's to budget
        cost = sum(c.get("cost", 0.0) for c in r["tool_calls"]
                   if c["tool"] not in ("erp_reserve_stock", "erp_release"))
        assert cost <= PER_DECISION + 1e-9
        spent[(r["user_ref"], r["ts"] // 86_400_000)] += cost
    assert max(spent.values()) <= PER_USER + 1e-9
    refused = [(r, c) for r in records for c in r["tool_calls"] if c["outcome"] == "over_budget"]
    assert refused, "no budget was reached: the test proves nothing"
    assert all(c["budget"].startswith(("per_user", "per_decision")) for _, c in refused)
    for r, _ in refused:
        assert r["fallbacks"] or r["suppressed"], r


def test_granted_offers_reserve_in_the_erp_and_expired_ones_are_released(enterprise_run):
    records, _, offers, reservations = enterprise_run
    by_id = {r["decision_id"]: r for r in records}
    reserved = [o for o in offers if any(
        c["tool"] == "erp_reserve_stock" and c["outcome"] == "ok"
        for c in by_id[o["id"]]["tool_calls"])]
    assert offers and len(reserved) == len(offers)
    assert reservations["held"] + reservations["released"] == len(reserved)
    releases = [c for r in records for c in r["tool_calls"] if c["tool"] == "erp_release"]
    assert all(c["outcome"] == "ok" for c in releases)
    assert reservations["released"] == len(releases)


def test_offers_expire_with_their_quote_and_respect_the_customers_credit(enterprise_run):
    records, _, offers, reservations = enterprise_run
    by_id = {r["decision_id"]: r for r in records}
    engine = [o for o in offers if any(c["tool"] == "pricing_engine_quote" and c["outcome"] ==
                                       "ok" for c in by_id[o["id"]]["tool_calls"])]
    assert engine and all(o["expires_ts"] <= o["ts"] + 900_000 for o in engine)
    span = max(r["ts"] for r in records) - min(r["ts"] for r in records)
    assert span > 2 * 900_000  # long enough in event time for quotes to expire
    assert reservations["released"] >= 1  # expired offers' reservations were released
    credit = [r for r in records if "credit left" in r["explanation"]]
    assert all(r["suppressed"] and r["decision_type"] == "offer" for r in credit)
