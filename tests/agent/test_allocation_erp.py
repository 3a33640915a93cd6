"""Allocation with an ERP in the runtime (agent.allocation): a granted offer reserves its
unit (idempotent by decision id), an expired one is released by the SKU's next proposal,
the ERP's "no stock" refuses the offer, an ERP that cannot answer sends it unreserved.
The ERP here is an in-process fake behind the real runtime (the HTTP adapters are tested
against the reference service in tests/connectors/test_enterprise_adapters.py)."""

from __future__ import annotations

from agent.allocation import AllocationFold, Proposal
from agent.tools import Tool, ToolRuntime, ToolSpec
from features.channels import DECISION_RECORDS, OFFERS


class FakeErp:
    def __init__(self, units: int = 10) -> None:
        self.units, self.held, self.calls, self.down = units, {}, 0, False

    def reserve(self, x: dict) -> dict:
        self.calls += 1
        if self.down:
            raise ConnectionError("ERP unreachable")
        key = x["_idempotency_key"]
        if key not in self.held:
            if self.units < 1:
                raise LookupError("not enough stock")
            self.units -= 1
            self.held[key] = f"R{len(self.held) + 1}"
        return {"reservation_id": self.held[key], "sku": x["sku"], "qty": 1, "status": "held"}

    def release(self, x: dict) -> dict:
        self.units += 1
        return {"reservation_id": x["reservation_id"], "status": "released"}

    def runtime(self) -> ToolRuntime:
        spec = {"scope": "erp:reserve", "read_only": False, "max_attempts": 1}
        return ToolRuntime([
            Tool(ToolSpec(name="erp_reserve_stock", description="r", **spec), self.reserve),
            Tool(ToolSpec(name="erp_release", description="r", **spec), self.release)])


REC = {"id": "rec:x", "ts": 0, "decision_id": "x", "decision_type": "offer",
       "suppressed": False, "user_ref": "ref", "trigger_event_id": "e", "goal": "push_offer",
       "plan": "p", "plan_version": "1", "model_version": "m", "explanation": "because"}


def _p(did: str, ts: int, available: int = 5) -> Proposal:
    return Proposal("SKU1", "u", did, ts, ts + 1_000, 10.0, 50.0, "EUR", available, "e",
                    {**REC, "decision_id": did, "id": f"rec:{did}"})


def _channels(out: list) -> list[str]:
    return [o.channel for o in out]


def test_a_granted_offer_reserves_and_its_expiry_releases():
    erp = FakeErp()
    rt = erp.runtime()
    fold = AllocationFold(lambda: rt)
    s = fold.new()
    out = fold.apply(s, _p("d1", 0))
    assert _channels(out) == [OFFERS.name, DECISION_RECORDS.name]
    assert "ERP reservation R1" in out[1].doc["explanation"] and erp.units == 9
    assert fold.apply(s, _p("d1", 0)) == []  # a replayed proposal: nothing, no new call
    out = fold.apply(s, _p("d2", 5_000))  # d1 expired at 1,000: released first
    calls = [c["tool"] for c in out[-1].doc["tool_calls"]]
    assert calls == ["erp_release", "erp_reserve_stock"] and erp.units == 9
    # the grants survive a snapshot with their reservation ids
    import pickle
    back = pickle.loads(pickle.dumps(s))
    assert back.grants == [(6_000, "d2", "R2")]


def test_the_erp_has_the_last_word_and_its_outage_degrades():
    erp = FakeErp(units=0)
    rt = erp.runtime()
    fold = AllocationFold(lambda: rt)
    out = fold.apply(fold.new(), _p("d1", 0))
    assert _channels(out) == [DECISION_RECORDS.name] and out[0].doc["suppressed"]
    assert "erp_no_stock" in out[0].doc["fallbacks"]
    erp.down = True
    out = fold.apply(fold.new(), _p("d2", 0))
    assert _channels(out) == [OFFERS.name, DECISION_RECORDS.name]
    assert "erp_reservation_unavailable" in out[1].doc["fallbacks"]


def test_without_an_erp_nothing_changes():
    out = AllocationFold().apply(AllocationFold().new(), _p("d1", 0))
    assert _channels(out) == [OFFERS.name, DECISION_RECORDS.name]
    assert "tool_calls" not in out[1].doc or all(
        c["tool"] not in ("erp_reserve_stock",) for c in out[1].doc["tool_calls"])
