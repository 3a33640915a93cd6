"""The bench's decision figures on a small scale, over the session's real Kafka and Redis.

``make bench`` is not run by the suite; this keeps its decision bench (embedded runs, Kafka
maxima, latency runs in both delivery modes) working end to end. It asserts what the script
reports, never how fast anything was.
"""

import json

import pytest

from scripts import bench

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

KAFKA_FIGURES = ("events_per_s_kafka_1w_main_flow", "decision_latency_p50_ms_kafka",
                 "decision_latency_p99_ms_kafka")


def test_decision_bench_reports_every_figure(kafka_bootstrap, redis_url, monkeypatch,
                                             tmp_path):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)  # the session's servers
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setattr(bench, "OUT", tmp_path / "bench.json")
    figs = bench.bench_decisions(events=3000, load_s=2.0, runs=2, max_runs_n=1, lat_runs=1,
                                 warmup_s=0.3)

    expected = {"decisions_per_s_embedded_1w", "events_per_s_embedded_1w_main_flow",
                "decision_path_us_per_decision"} | {
        f + suffix for f in KAFKA_FIGURES for suffix in ("", "_epoch", "_pipelined")}
    assert expected <= figs.keys()
    for name in expected:
        assert figs[name]["how"] and figs[name]["unit"]
        assert isinstance(figs[name]["value"], int | float)
    for name in ("decisions_per_s_embedded_1w", "events_per_s_embedded_1w_main_flow",
                 "events_per_s_kafka_1w_main_flow", "events_per_s_kafka_1w_main_flow_epoch",
                 "events_per_s_kafka_1w_main_flow_pipelined"):
        assert figs[name]["value"] > 0
    assert "median of 2 runs" in figs["decisions_per_s_embedded_1w"]["how"]
    for suffix in ("", "_epoch", "_pipelined"):
        p50 = figs[f"decision_latency_p50_ms_kafka{suffix}"]["value"]
        p99 = figs[f"decision_latency_p99_ms_kafka{suffix}"]["value"]
        assert 0 < p50 <= p99
        # the per-trigger series of the last latency run, next to bench.json
        series = json.loads((tmp_path / f"latency_series{suffix}.json").read_text())
        assert series and all(latency > 0 for _, latency in series)
