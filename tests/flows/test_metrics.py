"""The metrics endpoint: scraped while a flow runs over the real broker and Redis, its
counters agree with the run's own accounting (records in = valid events + dead letters;
decisions = decision records; the decision-lag histogram counts every record)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.request
import uuid
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator, write_jsonl
from connectors.kafka_admin import ensure_topics, produce_all
from connectors.memory_store import MemoryStore
from features.channels import NAMES as CHANNELS
from flows.main import RunConfig, run
from flows.settings import Settings
from scripts.kafka_util import consume_all


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    out: dict[tuple[str, tuple], float] = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            if s.name.startswith("bespoke_"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sum(sample: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in sample.items() if n == name
               and all(dict(ls).get(k) == w for k, w in labels.items()))


def _delta(after: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


class _Scraper(threading.Thread):
    """Scrapes every 0.2 s until stopped: what a Prometheus would have seen mid-run."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.stop, self.seen = port, threading.Event(), []

    def run(self) -> None:
        while not self.stop.wait(0.2):
            with contextlib.suppress(OSError):
                self.seen.append(_scrape(self.port))


def _check_accounting(m: dict, records: list[dict], lines_in: int, dead: int) -> None:
    assert _sum(m, "bespoke_input_records_total") == lines_in
    assert _sum(m, "bespoke_dead_letters_total") == dead > 0
    # every record read is one valid event (counted by type) or one dead letter
    assert _sum(m, "bespoke_events_total") + dead == lines_in
    kinds = Counter((r["decision_type"], "suppressed" if r["suppressed"] else
                     "unchanged" if r["output"].get("unchanged") else
                     "fallback" if r["fallbacks"] else "served") for r in records)
    for (kind, outcome), n in kinds.items():
        assert _sum(m, "bespoke_decisions_total", kind=kind, outcome=outcome) == n
    assert _sum(m, "bespoke_decisions_total") == len(records) > 0
    assert _sum(m, "bespoke_decision_lag_seconds_count") == len(records)
    denials = Counter(v["rule"] for r in records for v in r["verdicts"] if v["effect"] == "deny")
    for rule, n in denials.items():
        assert _sum(m, "bespoke_policy_denials_total", rule=rule) == n
    calls = Counter((c["tool"], c["outcome"]) for r in records for c in r["tool_calls"])
    for (tool, outcome), n in calls.items():
        assert _sum(m, "bespoke_tool_calls_total", tool=tool, outcome=outcome) == n


def _file_run(tmp_path, cfg: GenConfig, **settings) -> tuple[list, dict]:
    """A file run of generated events with metrics served: (the records generated, the
    metrics it added)."""
    from connectors.metrics import enable

    recs = list(Generator(cfg).records())
    path = tmp_path / "events.jsonl"
    write_jsonl(str(path), iter(recs))
    port, name = _free_port(), uuid.uuid4().hex
    s = Settings(_env_file=None, progress_every_s=0, metrics_port=port,
                 pseudonym_key="metrics-test-key", **settings)
    before = _scrape(port) if enable(port) else {}
    run(RunConfig(inputs=[str(path)], output=str(tmp_path / "out"), store=f"memory://{name}",
                  settings=s))
    MemoryStore.drop(name)
    return recs, _delta(_scrape(port), before)


def test_a_file_run_counts_what_it_wrote(tmp_path):
    recs, m = _file_run(tmp_path, GenConfig(seed=31, users=150, items=80, events=3000,
                                            malformed_rate=0.03))
    records = [json.loads(b) for b in read_channel(tmp_path / "out", "decision_records")]
    _check_accounting(m, records, len(recs), sum(r.malformed for r in recs))
    for ch in ("feed_updates", "decision_records", "dead_letters"):
        assert _sum(m, "bespoke_outgoing_total", channel=ch) == len(
            read_channel(tmp_path / "out", ch))
    versions = {dict(ls)["kind"] for (n, ls), v in m.items() if n == "bespoke_version_info"}
    assert "policy" in versions


@pytest.mark.kafka
@pytest.mark.redis
def test_metrics_scraped_during_a_kafka_run_match_its_accounting(
        kafka_bootstrap, redis_url, topic_prefix, tmp_path):
    s = Settings(_env_file=None, kafka_bootstrap_servers=kafka_bootstrap,
                 topic_prefix=topic_prefix, input_topics=[f"{topic_prefix}events"],
                 topic_partitions=3, progress_every_s=0, epoch_interval_s=0.5,
                 metrics_port=_free_port(), pseudonym_key="metrics-test-key",
                 record_archive_dir=str(tmp_path / "archive"))
    recs = list(Generator(GenConfig(seed=32, users=200, items=100, events=6000,
                                    malformed_rate=0.03)).records())
    ensure_topics(kafka_bootstrap, {s.input_topics[0]: 3} | {s.topic(ch): 3 for ch in CHANNELS})
    produce_all(kafka_bootstrap, s.input_topics[0], ((r.key, r.value) for r in recs))
    from connectors.metrics import enable

    enable(s.metrics_port)
    before = _scrape(s.metrics_port)
    scraper = _Scraper(s.metrics_port)
    scraper.start()
    t0 = time.monotonic()
    run(RunConfig(inputs=["kafka"], output="kafka", store=redis_url, settings=s), workers=2)
    scraper.stop.set()
    scraper.join(5)
    m = _delta(_scrape(s.metrics_port), before)
    records = [json.loads(x.value()) for x in consume_all(kafka_bootstrap,
                                                         s.topic("decision_records"))]
    _check_accounting(m, records, len(recs), sum(r.malformed for r in recs))
    parts = {dict(ls)["partition"] for (n, ls), _ in m.items()
             if n == "bespoke_input_records_total"}
    assert parts == {"0", "1", "2"}
    # scraped mid-run: counts that had started and not yet reached the end, a lag reported
    mid = [_delta(x, before) for x in scraper.seen]
    assert any(0 < _sum(x, "bespoke_input_records_total") < len(recs) for x in mid), (
        len(mid), time.monotonic() - t0)
    assert any(n == "bespoke_consumer_lag" for x in scraper.seen for (n, _) in x)
    assert _sum(m, "bespoke_store_writes_total") > 0
    # delivery=epoch: each epoch end of the Kafka and store sinks waited and was timed
    for sink in ("sink", "store"):
        ends = _sum(m, "bespoke_epochs_total", sink=sink)
        assert ends > 0
        assert _sum(m, "bespoke_epoch_confirm_seconds_count", sink=sink) == ends


def test_tool_costs_and_reviews_are_counted_from_the_records():
    from connectors.metrics import Metrics
    from features.events import Outgoing

    def out(channel: str, doc: dict) -> Outgoing:
        return Outgoing(channel=channel, key=b"k", value=json.dumps(doc).encode(), id="x")

    rec = {"decision_type": "offer", "ts": 0, "suppressed": False, "output": {},
           "fallbacks": [], "verdicts": [], "review": {"status": "approved"},
           "tool_calls": [{"tool": "pricing_engine_quote", "outcome": "ok", "cost": 0.02,
                           "latency_ms": 1.0},
                          {"tool": "erp_customer", "outcome": "ok", "cost": 0.004,
                           "latency_ms": 1.0},
                          {"tool": "pricing_engine_quote", "outcome": "over_budget",
                           "latency_ms": 0.0},
                          {"tool": "mes_lead_time", "outcome": "error", "attempts": 3,
                           "latency_ms": 9.0},
                          {"tool": "mes_lead_time", "outcome": "error",
                           "retry_budget_exhausted": True, "latency_ms": 3.0}]}
    m = Metrics()
    m.observe_outgoing([out("decision_records", rec), out("decision_records", rec),
                        out("review_requests", {"decision_id": "d"})])
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for fam in m.registry.collect() for s in fam.samples}
    assert got[("bespoke_tool_cost_total", (("tool", "pricing_engine_quote"),))] == 0.04
    assert got[("bespoke_tool_cost_total", (("tool", "erp_customer"),))] == 0.008
    assert got[("bespoke_reviews_total", (("status", "approved"),))] == 2
    assert got[("bespoke_reviews_total", (("status", "requested"),))] == 1
    assert got[("bespoke_tool_retries_total", (("tool", "mes_lead_time"),))] == 4
    assert got[("bespoke_tool_retry_budget_exhausted_total", (("tool", "mes_lead_time"),))] == 2
    assert got[("bespoke_tool_calls_total", (("outcome", "over_budget"),
                                             ("tool", "pricing_engine_quote")))] == 2


def test_state_snapshots_are_counted_per_step_with_recovery_on(tmp_path):
    _, m = _file_run(tmp_path, GenConfig(seed=32, users=100, items=60, events=2000,
                                         malformed_rate=0.0),
                     recovery_dir=str(tmp_path / "rec"), epoch_interval_s=0.2)
    steps = {dict(ls)["step"] for (n, ls), v in m.items()
             if n == "bespoke_snapshots_total" and v > 0}
    assert {"features_item", "features_user", "decision"} <= steps, steps
    for step in steps:
        assert _sum(m, "bespoke_snapshot_bytes_total", step=step) > _sum(
            m, "bespoke_snapshots_total", step=step)  # more than a byte each
