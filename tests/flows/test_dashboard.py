"""The drift dashboard (flows.dashboard): its data agree with the run's outputs, the page is
self-contained, and ``--serve`` answers on loopback."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator
from connectors.kafka_admin import ensure_topics, produce_all
from connectors.topic_reader import TopicReader
from flows.dashboard import SHOWN, collect, render
from flows.main import RunConfig, run
from flows.settings import Settings
from scripts import chromium

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def drifted_run(tmp_path_factory):
    """A run whose learner is made to raise drift alerts (thresholds every change passes)."""
    d = tmp_path_factory.mktemp("dash")
    recs = list(Generator(GenConfig(seed=5, users=300, items=150, events=12000,
                                    flip_at=0.5)).records())  # a drift to find
    src = d / "events.jsonl"
    src.write_bytes(b"\n".join(r.value for r in recs) + b"\n")
    settings = Settings(_env_file=None, progress_every_s=0, ranker_publish_every=100,
                        quality_sample_every=1, quality_report_every=300,
                        ranker_min_examples=100, ranker_refresh_s=0,
                        ranker_drift_fallback=True,
                        ranker_drift={"delta": 1.0, "rise": -10.0, "floor": -10.0,
                                      "tolerance": -10.0, "min_examples": 300,
                                      "min_fallback": 2000, "window": 100, "confirm": 100},
                        attribution_windows_s={"page_view": 600.0, "click": 600.0,
                                               "add_to_cart": 1200.0, "order": 1800.0})
    run(RunConfig(inputs=[str(src)], output=str(d / "out"),
                  store=f"memory://{uuid.uuid4().hex}", settings=settings))
    return d / "out"


def test_the_dashboard_data_agree_with_the_outputs(drifted_run):
    data = collect(drifted_run)
    records = [json.loads(b) for b in read_channel(drifted_run, "decision_records")]
    assert data["decisions"] == len(records)
    assert sum(map(sum, data["kinds"].values())) == len(records)
    feeds = [r for r in records if r["decision_type"] == "feed_update" and not r["suppressed"]]
    assert sum(map(sum, data["ranker"].values())) == len(feeds)
    assert sum(data["ranker"]["learned"]) > 0 and sum(data["ranker"]["heuristic"]) > 0
    examples = [e for e in map(json.loads, read_channel(drifted_run, "training_examples"))
                if e["decision_type"] == "feed_update"]
    assert sum(data["shown"]) == len(examples)
    alerts = [json.loads(b) for b in read_channel(drifted_run, "drift_alerts")]
    fallbacks = [a for a in alerts if a["action"] == "fallback"]
    assert fallbacks and len(data["fallbacks"]) == len(fallbacks)
    assert all(lo <= hi for lo, hi, _ in data["fallbacks"])
    assert len(data["models"]) == sum(json.loads(b)["model"] == "feed_ranker"
                                      for b in read_channel(drifted_run, "model_changes"))
    quality = [json.loads(b) for b in read_channel(drifted_run, "feature_quality")]
    assert data["psi"] and set(data["psi"]) == {f"{q['view']}.{q['field']}" for q in quality
                                                if q.get("psi") is not None}
    assert "input.events" in data["psi"]  # the input's mix, beside the features'
    # the input monitor's closed minutes: every event but those of the last minutes
    events = sum(1 for b in (drifted_run.parent / "events.jsonl").read_bytes().splitlines()
                 if b.strip())
    assert 0.9 * events < sum(data["inputs"]) <= events


def test_the_page_is_self_contained(drifted_run):
    page = render(collect(drifted_run))
    assert "Feeds by ranker" in page and "Feature drift" in page
    assert "cdn.bokeh.org" not in page and '<script src="http' not in page
    assert len(page) > 100_000  # Bokeh's JavaScript is inline


def test_chromium_draws_every_plot_with_data(drifted_run, tmp_path):
    """Headless Chromium renders the page; each plot's data glyphs paint pixels (counted as
    the difference from the same plot painted with its glyphs hidden). The screenshot is kept
    under out/test-artifacts/."""
    assert chromium.executable(), "chromium missing: scripts/install-server-deps.sh installs it"
    page = tmp_path / "dashboard.html"
    page.write_text(render(collect(drifted_run)), encoding="utf-8")
    plots = chromium.plots_drawn(page)
    titles = [p["title"] for p in plots]
    assert len(plots) == 8, titles
    for want in ("Feeds by ranker", "Share of served items", "prequential log-loss",
                 "Decisions by kind", "Policy denials", "Feature drift", "Dead letters",
                 "Input events"):
        assert any(want in t for t in titles), (want, titles)
    for p in plots:
        assert p["glyphs"] > 0 and p["rows"] > 0, p
        assert p["drawn_px"] > 300, p  # the data drew something visible, not an empty frame
        assert p["width"] > 300 and p["height"] > 100, p
    png = chromium.screenshot(page, ROOT / "out" / "test-artifacts" / "dashboard.png")
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(head[16:20], "big") == 1400  # the IHDR width: the window's


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_cli_writes_and_serves_the_page(drifted_run, tmp_path):
    html = tmp_path / "d.html"
    got = subprocess.run([sys.executable, "-m", "flows", "dashboard", "--input",
                          str(drifted_run), "--html", str(html)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr[-2000:]
    assert "Feeds by ranker" in html.read_text()
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flows", "dashboard", "--input",
                             str(drifted_run), "--serve", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline, body = time.monotonic() + 30, b""
        while time.monotonic() < deadline and not body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
                    body = r.read()
            except OSError:
                time.sleep(0.2)
        assert b"Feeds by ranker" in body and b'http-equiv="refresh"' in body
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def _to_topics(kafka_bootstrap: str, prefix: str, run_dir: Path, part: int, of: int) -> None:
    """The file run's shown channels onto topics of 3 partitions (keyed by their id); the
    ``part``-th of ``of`` slices of each channel's lines."""
    for c in SHOWN:
        lines = read_channel(run_dir, c)
        lo, hi = len(lines) * part // of, len(lines) * (part + 1) // of
        produce_all(kafka_bootstrap, f"{prefix}{c}",
                    ((json.loads(b).get("id") or "", b) for b in lines[lo:hi]))


@pytest.mark.kafka
def test_the_dashboard_reads_the_output_topics_and_follows_them(drifted_run, kafka_bootstrap,
                                                                topic_prefix, tmp_path):
    """``--input kafka``: the page's data from the topics equal those from the run's files,
    and ``--serve`` shows what arrives while it serves (read before each request)."""
    ensure_topics(kafka_bootstrap, {f"{topic_prefix}{c}": 3 for c in SHOWN})
    _to_topics(kafka_bootstrap, topic_prefix, drifted_run, 0, 2)
    with TopicReader(kafka_bootstrap, {c: f"{topic_prefix}{c}" for c in SHOWN}) as reader:
        assert reader.refresh() == sum(len(read_channel(drifted_run, c)) // 2 for c in SHOWN)
        half = collect(reader)
        _to_topics(kafka_bootstrap, topic_prefix, drifted_run, 1, 2)
        reader.refresh()
        assert reader.refresh() == 0  # nothing new: nothing read twice
        assert collect(reader) == collect(drifted_run)
    assert half["decisions"] == len(read_channel(drifted_run, "decision_records")) // 2

    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "BESPOKE_TOPIC_PREFIX": f"{topic_prefix}x."}
    later = f"{topic_prefix}x."
    ensure_topics(kafka_bootstrap, {f"{later}{c}": 3 for c in SHOWN})
    _to_topics(kafka_bootstrap, later, drifted_run, 0, 2)
    proc = subprocess.Popen([sys.executable, "-m", "flows", "dashboard", "--input", "kafka",
                             "--serve", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def page() -> str:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
                        return r.read().decode()
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.3)

        total = len(read_channel(drifted_run, "decision_records"))
        assert f"{total // 2:,} decisions" in page()
        _to_topics(kafka_bootstrap, later, drifted_run, 1, 2)
        assert f"{total:,} decisions" in page()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
