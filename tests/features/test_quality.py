"""Feature quality: PSI over a shifted field raises one drift alert, then recovers."""

from __future__ import annotations

import random

from features.definitions import ITEM_PRICE, REGISTRY
from features.events import DriftAlert
from features.quality import PsiAlerts, ViewMonitor
from operators.quality import _QualityFold


def _row(price: float) -> dict:
    return {"price": price, "list_price": 200.0, "currency": "EUR", "price_ts": 0}


def _alerts_for(prices: list[float], every: int = 100) -> list[dict]:
    m, alerts, out = ViewMonitor(ITEM_PRICE, reference_size=300, window=200), PsiAlerts(), []
    for i, p in enumerate(prices, 1):
        m.observe(_row(p), ts=i)
        if i % every == 0:
            out += alerts.observe(m.report("fq", i))
    return out


def test_a_stationary_field_raises_no_alert() -> None:
    rng = random.Random(7)
    assert _alerts_for([rng.gauss(50, 10) for _ in range(3000)]) == []


def test_a_shift_alerts_once_then_recovers_when_the_field_returns() -> None:
    rng = random.Random(7)
    prices = ([rng.gauss(50, 10) for _ in range(1000)] + [rng.gauss(90, 10) for _ in range(1000)]
              + [rng.gauss(50, 10) for _ in range(1000)])
    alerts = _alerts_for(prices)
    price = [a for a in alerts if a["subject"] == "item_price_v1.price"]
    assert [a["action"] for a in price] == ["none", "recovered"]
    raised, recovered = price
    assert 1000 < raised["ts"] <= 1300  # confirmed by two reports over the shifted window
    assert 2000 < recovered["ts"] <= 2400  # once the window holds the old values again
    assert raised["statistic"] > 0.25 and recovered["statistic"] < 0.125
    for a in price:
        DriftAlert.model_validate(a)  # a contract event
        assert a["monitor"] == "psi:item_price_v1.price" and a["detector"] == "psi"
    assert [a["subject"] for a in alerts] == ["item_price_v1.price"] * 2  # other fields: constant


def test_per_field_thresholds_override_the_default() -> None:
    rng = random.Random(3)
    prices = [rng.gauss(50, 10) for _ in range(1000)] + [rng.gauss(90, 10) for _ in range(500)]
    m, out = ViewMonitor(ITEM_PRICE, reference_size=300, window=200), []
    lax = PsiAlerts({"item_price_v1.price": 1e9})
    for i, p in enumerate(prices, 1):
        m.observe(_row(p), ts=i)
        if i % 100 == 0:
            out += lax.observe(m.report("fq", i))
    assert out == []


def test_the_quality_step_emits_alerts_and_keeps_them_in_its_state() -> None:
    import pickle

    fold = _QualityFold(REGISTRY, report_every=100, reference_size=300)
    state, emitted = fold.new(), []
    rng = random.Random(11)
    for i in range(1600):
        price = rng.gauss(50, 10) if i < 1000 else rng.gauss(90, 10)
        emitted += fold.apply(state, (ITEM_PRICE.store_prefix, _row(price), i))
        if i == 1100:
            state = pickle.loads(pickle.dumps(state))  # a snapshot mid-shift
    alerts = [o for o in emitted if hasattr(o, "channel")]
    assert [o.channel for o in alerts] == ["drift_alerts"]
    assert alerts[0].doc["subject"] == "item_price_v1.price"


def test_timestamps_have_no_psi_since_they_move_forward_by_construction() -> None:
    m = ViewMonitor(ITEM_PRICE, reference_size=100, window=100)
    for i in range(400):
        m.observe({**_row(50.0 + i % 7), "price_ts": i * 1000}, ts=i * 1000)
    r = {q.field: q.psi for q in m.report("fq", 0)}
    assert r["price_ts"] is None and r["price"] is not None
