"""The input's drift monitor in the flow: a burst of garbage in the middle of a generated
file raises one ``input:dead_letters`` alert, which recovers after the burst; nothing else
about the input is flagged (the catalog and stock loads at the start included)."""

from __future__ import annotations

import json
import uuid

import pytest

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator, GenRecord, write_jsonl
from connectors.memory_store import MemoryStore
from features.events import DriftAlert
from flows.main import RunConfig, run
from flows.settings import Settings


@pytest.mark.slow
@pytest.mark.parametrize("native", [True, False])
def test_a_dead_letter_burst_is_an_input_alert_that_recovers(tmp_path, native):
    recs = list(Generator(GenConfig(seed=11, users=300, items=150, events=30_000,
                                    malformed_rate=0.0)).records())
    mid = len(recs) * 3 // 5
    burst_ts = recs[mid].ts
    garbage = [GenRecord("x", b'{"type": "page_view", "ts": "soon"}', True, "malformed",
                         burst_ts)] * 800
    path = tmp_path / "events.jsonl"
    write_jsonl(str(path), iter(recs[:mid] + garbage + recs[mid:]))
    name = uuid.uuid4().hex
    out = tmp_path / "out"
    run(RunConfig(inputs=[str(path)], output=str(out), store=f"memory://{name}",
                  decisions=False,
                  settings=Settings(_env_file=None, progress_every_s=0,
                                    native_kernels=native)))
    MemoryStore.drop(name)
    alerts = [DriftAlert.model_validate_json(b) for b in read_channel(out, "drift_alerts")]
    inputs = [a for a in alerts if a.monitor.startswith("input:")]
    assert [(a.monitor, a.action) for a in inputs] == [("input:dead_letters", "none"),
                                                       ("input:dead_letters", "recovered")]
    raised, back = inputs
    minute = 60_000
    assert burst_ts < raised.ts <= burst_ts + 6 * minute  # grace 2 + confirm 2 buckets
    assert raised.statistic > raised.threshold >= 0.05
    assert raised.ts < back.ts <= burst_ts + 12 * minute
    dead = [json.loads(b) for b in read_channel(out, "dead_letters")]
    assert len(dead) == 800
