"""The input's drift monitor: quiet on a stationary stream, an alert and a recovery for a
rate drop, a dead-letter burst, a change of mix and late events; resumes from a pickle;
the native batches count like the tuples."""

from __future__ import annotations

import pickle
import random
from collections import Counter

import pytest

from connectors.generator import GenConfig, Generator
from features.events import DriftAlert, FeatureQuality
from features.ingest import expand, ingest
from features.input_monitor import InputMonitor, kind_counts
from features.native import available
from features.validate import RawRecord

MIX = {"page_view": 0.7, "click": 0.15, "add_to_cart": 0.1, "order": 0.05}
B = 60_000


def _bucket(rng: random.Random, b: int, n: int, mix: dict[str, float] = MIX,
            dead: float = 0.01, late: float = 0.005) -> tuple[list, int, int]:
    kinds = rng.choices(sorted(mix), weights=[mix[k] for k in sorted(mix)], k=n)
    counts = Counter((b * B, k) for k in kinds)
    d = sum(rng.random() < dead for _ in range(n))
    lt = sum(rng.random() < late for _ in range(n))
    return [(t, k, c) for (t, k), c in sorted(counts.items())], d, lt


def _run(m: InputMonitor, buckets: list[tuple[list, int, int]]) -> list[dict]:
    """The drift alerts of the monitor over ``buckets`` (``_run_all``: its reports too)."""
    return _alerts(_run_all(m, buckets))


def _run_all(m: InputMonitor, buckets: list[tuple[list, int, int]]) -> list[dict]:
    out = []
    for counts, dead, late in buckets:
        # a bucket arrives in three chunks, its dead letters and late events with the last
        third = [(t, k, c // 3) for t, k, c in counts]
        rest = [(t, k, c - 2 * (c // 3)) for t, k, c in counts]
        out += m.observe(third) + m.observe(third) + m.observe(rest, dead=dead, late=late)
    return out


def _stream(seed: int, n: int, change=lambda b: {}) -> list[tuple[list, int, int]]:
    rng = random.Random(seed)
    out = []
    for b in range(n):
        kw = {"n": max(1, int(rng.gauss(250, 15)))} | change(b)
        out.append(_bucket(rng, b, **kw))
    return out


def _alerts(docs: list[dict]) -> list[dict]:
    """The drift alerts among the monitor's documents (the rest: its bucket reports)."""
    for d in docs:
        (DriftAlert if d["type"] == "drift_alert" else FeatureQuality).model_validate(d)
    return [d for d in docs if d["type"] == "drift_alert"]


def _kinds(docs: list[dict]) -> list[tuple[str, str]]:
    return [(a["monitor"], a["action"]) for a in _alerts(docs)]


def test_a_stationary_input_of_50k_events_raises_nothing() -> None:
    for seed in (1, 2, 3):
        m = InputMonitor()
        stream = _stream(seed, 200)  # 200 buckets x ~250 events
        stream[0][0].extend([(0, "catalog", 1000), (0, "inventory", 1000)])  # a first load
        assert _kinds(_run(m, stream)) == []
        assert m.stragglers == 0


def test_a_rate_drop_alerts_within_a_few_buckets_and_recovers() -> None:
    drop = lambda b: {"n": 50} if 100 <= b < 140 else {}  # noqa: E731
    alerts = _run(InputMonitor(), _stream(4, 200, drop))
    assert _kinds(alerts) == [("input:rate", "none"), ("input:rate", "recovered")]
    raised, back = alerts
    assert 100 * B < raised["ts"] <= 106 * B  # window 3 and confirm 2 (grace is 2)
    assert raised["statistic"] < raised["threshold"] < 0.34  # a ratio under 1/3
    assert 140 * B < back["ts"] <= 146 * B
    assert abs(back["reference"] - 250) < 20  # the reference before the drop, kept


def test_a_dead_letter_burst_alerts_and_recovers() -> None:
    burst = lambda b: {"dead": 0.3} if 80 <= b < 90 else {}  # noqa: E731
    alerts = _run(InputMonitor(), _stream(5, 150, burst))
    assert _kinds(alerts) == [("input:dead_letters", "none"),
                              ("input:dead_letters", "recovered")]
    assert 80 * B < alerts[0]["ts"] <= 84 * B
    assert alerts[0]["statistic"] > 0.1


def test_a_change_of_mix_alerts_and_recovers() -> None:
    views_only = {"page_view": 0.95, "click": 0.05}  # carts and orders vanish
    change = lambda b: {"mix": views_only} if 60 <= b < 100 else {}  # noqa: E731
    alerts = _run(InputMonitor(), _stream(6, 160, change))
    assert _kinds(alerts) == [("input:mix", "none"), ("input:mix", "recovered")]
    assert 60 * B < alerts[0]["ts"] <= 64 * B


def test_late_events_alert() -> None:
    late = lambda b: {"late": 0.2} if 50 <= b < 70 else {}  # noqa: E731
    alerts = _run(InputMonitor(), _stream(7, 120, late))
    assert _kinds(alerts) == [("input:late_events", "none"),
                              ("input:late_events", "recovered")]


def test_it_resumes_from_a_pickle_with_the_same_alerts() -> None:
    drop = lambda b: {"n": 40} if 60 <= b < 90 else {}  # noqa: E731
    stream = _stream(8, 130, drop)
    whole = _run(InputMonitor(), stream)
    m = InputMonitor()
    first = _run(m, stream[:70])
    second = _run(pickle.loads(pickle.dumps(m)), stream[70:])
    assert first + second == whole and len(whole) == 2


def test_an_input_that_goes_quiet_closes_empty_buckets() -> None:
    stream = _stream(9, 60)
    m = InputMonitor()
    out = _run(m, stream)
    # 20 buckets with no event, then one: the empty ones close (and are a rate drop)
    out += m.observe([(80 * B, "page_view", 250)]) + m.observe([(81 * B, "page_view", 250)])
    assert ("input:rate", "none") in _kinds(out)


def test_a_jump_in_event_time_is_skipped_with_the_same_alerts_as_closing_every_bucket():
    """A gap of years (a far-off timestamp) would be millions of empty buckets: past the
    point where empty ones change nothing they are skipped; the alerts are those of closing
    every one (checked on a gap small enough to close one by one)."""
    before, after = _stream(10, 60), _stream(11, 60)
    gap = 400  # buckets
    after = [([(t + (60 + gap) * B, k, c) for t, k, c in counts], d, lt)
             for counts, d, lt in after]
    skipping, closing = InputMonitor(), InputMonitor()
    closing._settle = lambda: 10**9  # type: ignore[method-assign]
    a = _run(skipping, before + after)
    b = _run(closing, before + after)
    assert a == b and ("input:rate", "none") in _kinds(a)
    assert ("input:rate", "recovered") in _kinds(a)
    # a year ahead, then back to normal traffic: it returns at once, without a late flood
    far = InputMonitor()
    _run(far, before)
    year = 525_600 * B
    assert far.observe([(year, "page_view", 1)]) is not None
    assert far.next_close is not None and far.next_close >= year - 3 * B


@pytest.mark.skipif(not available(), reason="bespoke_native is not built")
def test_native_batches_count_like_the_tuples() -> None:
    recs = [RawRecord("g", 0, i, r.value, 0) for i, r in enumerate(
        Generator(GenConfig(users=50, items=40, events=3000, seed=3)).records())]
    native = ingest(recs, "native", native=True)
    python = expand(native)
    assert any(type(x) is not tuple for x in native[0])  # the native path was taken
    for bucket in (1000, 60_000):
        got = kind_counts(native[0], native[1], bucket)
        want = kind_counts(python[0], python[1], bucket)
        assert got == want and sum(n for _, _, n in got) > 3000 * 0.9


def test_a_lasting_change_becomes_the_new_normal_and_a_catalog_load_is_no_alert() -> None:
    lasting = lambda b: {"n": 60} if b >= 50 else {}  # noqa: E731
    stream = _stream(10, 160, lasting)
    stream[100][0].append((100 * B, "catalog", 5000))  # a catalog reload
    alerts = _run(InputMonitor(), stream)
    assert _kinds(alerts) == [("input:rate", "none"), ("input:rate", "recovered")]
    # frozen for the reference's 30 buckets, then the reference fills with the new rate
    assert 50 * B < alerts[0]["ts"] <= 56 * B and 80 * B < alerts[1]["ts"] <= 112 * B


def test_every_closed_bucket_is_reported_with_its_counts() -> None:
    """One ``feature_quality`` report (view ``input``) per closed bucket: its events, its
    dead letters and late events; the mix's PSI once the reference is full."""
    stream = _stream(9, 60)
    reports = [d for d in _run_all(InputMonitor(), stream) if d["type"] == "feature_quality"]
    closed = len(stream) - 3  # a bucket closes once one two buckets past its end is seen
    assert [r["ts"] for r in reports] == [(b + 1) * B for b in range(closed)]
    for r, (counts, dead, late) in zip(reports, stream, strict=False):
        assert (r["view"], r["field"]) == ("input", "events")
        assert r["observed"] == sum(c for _, _, c in counts)
        assert (r["missing"], r["stale"]) == (dead, late)
    judged = [r for r in reports if r["psi"] is not None]
    assert judged and judged[0]["reference_size"] >= 10
    assert all(0 <= r["psi"] < 0.25 for r in judged)  # a stationary mix
