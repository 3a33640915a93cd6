"""The monitoring shipped as code (deploy/): the alert rules pass ``promtool check`` and their
own unit tests, the Grafana dashboard names only metrics the flow exports, and a real
Prometheus on loopback scrapes a flow and answers every panel's query with data."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from connectors.generator import GenConfig, Generator, write_jsonl
from connectors.memory_store import MemoryStore
from connectors.metrics import Metrics, enable, metrics
from flows.main import RunConfig, run
from flows.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "bespoke.json"
RULES = DEPLOY / "prometheus" / "rules.yml"
# panels the file run below must fill (the others need Kafka, Redis failures or drift)
FILLED = {"Events in by type", "Records read per partition", "Decisions by kind and outcome",
          "Decision lag (trigger event time to decision)", "Policy denials by rule",
          "Dead letters by reason", "Tool calls by outcome", "Tool latency p95",
          "Breakers open", "Store writes", "Versions in use", "Processes up"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("BESPOKE_REQUIRE_NATIVE"):  # make test: the install script has run
            pytest.fail(f"{name} not installed: scripts/install-server-deps.sh installs it")
        pytest.skip(f"{name} not installed (apt-get install prometheus)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _targets() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] if p["type"] != "row"
            for t in p["targets"]]


def _exported() -> set[str]:
    """Every sample name the flow's metrics can expose."""
    names = set()
    for fam in Metrics().registry.collect():
        if fam.type == "counter":
            names.add(fam.name + "_total")
        elif fam.type == "histogram":
            names |= {fam.name + s for s in ("_bucket", "_count", "_sum")}
        else:
            names.add(fam.name)
    return names


def test_alert_rules_and_prometheus_config_pass_promtool():
    promtool = _tool("promtool")
    for args in (["check", "rules", str(RULES)],
                 ["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                 ["test", "rules", str(DEPLOY / "prometheus" / "rules_test.yml")]):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    tested = {t["alertname"] for case in yaml.safe_load(
        (DEPLOY / "prometheus" / "rules_test.yml").read_text())["tests"]
        for t in case["alert_rule_test"]}
    rules = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert rules == tested, "every alert rule has a unit test"


def test_dashboard_and_rules_name_only_exported_metrics():
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    provisioned = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources"
                                  / "prometheus.yml").read_text())["datasources"][0]["uid"]
    cells: set[tuple[int, int]] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] != "row":
            assert p["datasource"]["uid"] == provisioned and p["targets"], p["title"]
    used = {m for _, e in _targets() for m in re.findall(r"\bbespoke_[a-z_]+", e)}
    used |= {m for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
             for m in re.findall(r"\bbespoke_[a-z_]+", r["expr"])}
    assert used and used <= _exported(), used - _exported()
    # the list: throughput, lag, latency percentiles, dead letters, denials, tools,
    # breakers, drift, versions
    for metric in ("bespoke_events_total", "bespoke_consumer_lag",
                   "bespoke_decision_lag_seconds_bucket", "bespoke_dead_letters_total",
                   "bespoke_policy_denials_total", "bespoke_tool_calls_total",
                   "bespoke_breaker_open", "bespoke_drift_active", "bespoke_version_info"):
        assert metric in used, metric


def _query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        body = urllib.request.urlopen(url, timeout=10).read()
    except urllib.error.HTTPError as e:  # a bad query is a 400 with the reason
        body = e.read()
    return json.loads(body)


def test_a_real_prometheus_scrapes_a_flow_and_answers_every_panel(tmp_path):
    binary = _tool("prometheus")
    metrics_port, prom_port = _free_port(), _free_port()
    enable(metrics_port)
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "bespoke",
                            "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}]}))
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"))
    base = f"http://127.0.0.1:{prom_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
                time.sleep(0.2)
        recs = list(Generator(GenConfig(seed=41, users=150, items=80, events=3000,
                                        malformed_rate=0.03)).records())
        write_jsonl(str(tmp_path / "events.jsonl"), iter(recs))
        name = uuid.uuid4().hex
        s = Settings(_env_file=None, progress_every_s=0, metrics_port=metrics_port,
                     pseudonym_key="monitoring-test-key")
        run(RunConfig(inputs=[str(tmp_path / "events.jsonl")], output=str(tmp_path / "out"),
                      store=f"memory://{name}", settings=s))
        MemoryStore.drop(name)
        live = metrics()
        assert live is not None
        want = sum(x.value for fam in live.registry.collect() for x in fam.samples
                   if x.name == "bespoke_events_total")
        assert want > 0
        # wait until Prometheus has scraped the finished run a few times
        deadline = time.monotonic() + 30
        while True:
            got = _query(base, 'sum(bespoke_events_total)')["data"]["result"]
            seen = _query(base, 'count_over_time(up{job="bespoke"}[1m])')["data"]["result"]
            if got and float(got[0]["value"][1]) == want and float(seen[0]["value"][1]) >= 3:
                break
            assert time.monotonic() < deadline, (got, want, seen)
            time.sleep(0.5)
        for title, expr in _targets():
            answer = _query(base, expr.replace("$__rate_interval", "1m"))
            assert answer["status"] == "success", (title, expr, answer)
            if title in FILLED:
                assert answer["data"]["result"], (title, expr)
        groups = json.loads(urllib.request.urlopen(f"{base}/api/v1/rules", timeout=10).read())
        health = [(r["name"], r["health"]) for g in groups["data"]["groups"] for r in g["rules"]]
        count = sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"])
        assert len(health) == count and all(h != "err" for _, h in health), health
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
