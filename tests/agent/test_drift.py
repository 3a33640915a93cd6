"""The learner's drift monitor (agent.drift) and what the learner does with its alerts."""

import math
import pickle
import random
import statistics

from agent.drift import LossMonitor, RateMonitor
from agent.learner import FEED_RANKER, FeedLearner, Outcome
from agent.ranker import FEATURES, parse_snapshot
from features.events import DriftAlert
from features.store import StoreWrite

I_POP = FEATURES.index("pop")


def _stream(rnd: random.Random, n: int, shift_at: int | None, back_at: int | None):
    """A model with an edge (it predicts each example's own rate: 0.1 or 0.6) until
    ``shift_at``, then one that predicts them the wrong way round, until ``back_at``."""
    for i in range(n):
        p_true = 0.1 if rnd.random() < 0.7 else 0.6
        broken = shift_at is not None and shift_at <= i and (back_at is None or i < back_at)
        p_model = (0.6 if p_true == 0.1 else 0.1) if broken else p_true
        y = rnd.random() < p_true
        base_rate = 0.7 * 0.1 + 0.3 * 0.6
        yield (-math.log(p_model if y else 1 - p_model)
               + math.log(base_rate if y else 1 - base_rate))


def test_a_stationary_stream_of_50k_raises_nothing():
    for seed in (1, 2, 3):
        m = LossMonitor()
        events = [e for x in _stream(random.Random(seed), 50_000, None, None)
                  for e in m.observe(x)]
        assert events == [], seed


def test_a_broken_model_is_caught_within_a_bounded_delay_and_recovers_without_flapping():
    delays = []
    for seed in range(5):
        m = LossMonitor()
        events = [e for x in _stream(random.Random(seed), 40_000, 10_000, 20_000)
                  for e in m.observe(x)]
        assert [e.action for e in events] == ["fallback", "recovered"], seed
        fallback, recovered = events
        assert fallback.statistic > fallback.threshold >= 0.03
        # ADWIN's own delay plus the confirmation (2,000 examples)
        delays.append(fallback.at - 10_000)
        # back once repaired, after the minimum dwell and a full window of good examples
        assert recovered.at >= max(20_000, fallback.at + 5_000)
        assert recovered.statistic < recovered.threshold == -0.02
    assert 2_000 <= statistics.median(delays) <= 3_000, delays


def test_the_monitor_resumes_from_its_snapshot_with_the_same_alerts():
    xs = list(_stream(random.Random(7), 30_000, 10_000, None))
    whole = LossMonitor()
    expected = [e for x in xs for e in whole.observe(x)]
    first = LossMonitor()
    got = [e for x in xs[:11_000] for e in first.observe(x)]
    resumed = pickle.loads(pickle.dumps(first))
    got += [e for x in xs[11_000:] for e in resumed.observe(x)]
    assert got == expected and expected


def _outcomes(n: int, flip_at: int):
    """Popular items get acted on, then (from ``flip_at``) unpopular ones."""
    rnd = random.Random(3)
    for i in range(n):
        row = [0.0] * len(FEATURES)
        row[I_POP] = rnd.random()
        p = row[I_POP] if i < flip_at else 1 - row[I_POP]
        yield Outcome(FEED_RANKER, 1000 + i, f"ex:{i}", tuple(row), int(rnd.random() < p))


def _run(learner: FeedLearner, outcomes):
    st = learner.new()
    alerts, rows = [], []
    for o in outcomes:
        for x in learner.apply(st, o):
            if type(x) is StoreWrite:
                if x.key == FEED_RANKER:
                    rows.append((o.event_id, parse_snapshot(x.fields)))
            elif x.channel == "drift_alerts":
                alerts.append(DriftAlert.model_validate_json(x.value))
    return alerts, rows


def test_the_learner_marks_its_newest_version_on_a_fallback_and_unmarks_it_on_recovery():
    drift = {"rise": 0.05, "floor": 0.0, "tolerance": 0.0, "min_examples": 500,
             "min_fallback": 500, "window": 500, "confirm": 300}
    alerts, rows = _run(FeedLearner(publish_every=200, drift=drift), _outcomes(8000, 3000))
    assert [a.action for a in alerts][:2] == ["fallback", "recovered"]
    fallback, recovered = alerts[:2]
    assert fallback.examples > 3000 and fallback.model_version
    assert fallback.statistic > fallback.threshold and fallback.reference is not None
    marked = [snap for _, snap in rows if snap.fallback == fallback.id]
    assert marked and marked[0].version == fallback.model_version
    # publications between the two alerts keep the mark; after the recovery, none
    at = {a.id: a.examples for a in alerts}
    for eid, snap in rows:
        n = int(eid.split(":")[1]) + 1
        if at[fallback.id] <= n < at[recovered.id]:
            assert snap.fallback == fallback.id, (n, snap)
        elif n >= at[recovered.id] and len(alerts) == 2:
            assert snap.fallback == ""


def test_without_fallback_alerts_are_only_reported():
    drift = {"rise": 0.05, "floor": 0.0, "tolerance": 0.0, "min_examples": 500,
             "min_fallback": 500, "window": 500, "confirm": 300}
    alerts, rows = _run(FeedLearner(publish_every=200, drift=drift, fallback=False),
                        _outcomes(8000, 3000))
    assert alerts and alerts[0].action == "none"
    assert all(snap.fallback == "" for _, snap in rows)


def _clicks(rnd: random.Random, n: int, rate: float, low: float, drop_at: int | None,
            back_at: int | None):
    for i in range(n):
        dropped = drop_at is not None and drop_at <= i and (back_at is None or i < back_at)
        yield int(rnd.random() < (low if dropped else rate))


def test_a_stationary_rate_of_50k_raises_nothing():
    for drop in (0.25, 0.20):  # the class's default, the ranker's CTR setting's
        for seed, rate in ((1, 0.3), (2, 0.05), (3, 0.6), (4, 0.4)):
            m = RateMonitor(drop=drop)
            assert [e for y in _clicks(random.Random(seed), 50_000, rate, rate, None, None)
                    for e in m.observe(y)] == [], (seed, rate, drop)


def test_a_rate_drop_is_reported_within_a_bounded_delay_and_recovers_once():
    delays = []
    for seed in range(5):
        m = RateMonitor()
        events = [e for y in _clicks(random.Random(seed), 40_000, 0.3, 0.18, 10_000, 20_000)
                  for e in m.observe(y)]
        assert [e.action for e in events] == ["none", "recovered"], seed
        alert, back = events
        assert alert.statistic < alert.threshold < alert.reference
        assert abs(alert.reference - 0.3) < 0.03
        delays.append(alert.at - 10_000)
        assert back.at > 20_000
    assert max(delays) <= 3_000, delays


def test_the_rate_monitor_resumes_from_its_snapshot_with_the_same_alerts():
    ys = list(_clicks(random.Random(5), 30_000, 0.3, 0.1, 10_000, None))
    whole = RateMonitor()
    expected = [e for y in ys for e in whole.observe(y)]
    first = RateMonitor()
    got = [e for y in ys[:10_500] for e in first.observe(y)]
    resumed = pickle.loads(pickle.dumps(first))
    got += [e for y in ys[10_500:] for e in resumed.observe(y)]
    assert got == expected and expected


def test_the_learner_reports_a_ctr_drop_as_a_drift_alert():
    learner = FeedLearner(publish_every=1000, fallback=False)
    st = learner.new()
    rnd = random.Random(4)
    row = tuple(0.0 for _ in FEATURES)
    docs = []
    for i in range(12_000):
        y = int(rnd.random() < (0.4 if i < 6_000 else 0.15))
        for o in learner.apply(st, Outcome(FEED_RANKER, 1000 + i, f"ex:{i}", row, y)):
            if getattr(o, "channel", "") == "drift_alerts" and o.doc["monitor"].endswith("ctr"):
                docs.append(DriftAlert.model_validate(o.doc))
    assert [d.action for d in docs] == ["none"]
    assert docs[0].monitor == "feed_ranker-ctr" and docs[0].ts > 1000 + 6_000
    assert docs[0].reference > 0.35 and docs[0].statistic < 0.2


def test_a_ctr_drop_sends_the_model_to_fallback_and_its_loss_brings_it_back():
    drift = {"min_examples": 500, "min_fallback": 1500, "window": 1000, "confirm": 500,
             "tolerance": 0.02}
    learner = FeedLearner(publish_every=500, drift=drift)
    rnd = random.Random(6)

    def outcomes():
        for i in range(16_000):
            row = [0.0] * len(FEATURES)
            row[I_POP] = hit = float(rnd.random() < 0.5)  # an informative feature
            p = (0.7 if hit else 0.1) if i < 6_000 else (0.35 if hit else 0.02)
            yield Outcome(FEED_RANKER, 1000 + i, f"ex:{i}", tuple(row), int(rnd.random() < p))

    alerts, rows = _run(learner, outcomes())
    acts = [(a.monitor, a.action) for a in alerts]
    assert acts[0] == ("feed_ranker-ctr", "fallback") and alerts[0].examples > 6_000
    back = next(a for a in alerts if a.monitor == "feed_ranker-loss")
    assert back.action == "recovered" and back.examples >= alerts[0].examples + 1500
    assert any(snap.fallback for _, snap in rows)
    for eid, snap in rows:  # marked from the CTR alert until the loss's recovery
        n = int(eid.split(":")[1]) + 1
        assert snap.fallback == (alerts[0].id if alerts[0].examples <= n < back.examples
                                 else ""), (n, snap.fallback)
