"""Pending reviews survive kill -9: a run killed while decisions were held for review and
resumed from its recovery directory resolves them as a run that was never killed does
(approved by the reviewer's signed decision, or timed out in event time), from the holds
kept in the decision shards' snapshotted state. The store is the real Redis: an in-process
store does not survive a restart (docs/operations.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator, write_jsonl
from connectors.policy_packs import DEFAULT_DIR
from policies.control_auth import sign_control

ROOT = Path(__file__).resolve().parents[2]
SECRET, KEY = "reviewer-secret-0123456789", "reviewers-1"
RULE = '''
[[rules]]
id = "review-offers"
type = "review"
actions = ["offer"]
params = { min_discount_pct = 5, timeout_s = 300 }
'''


def _final(out: Path) -> dict[str, dict]:
    """The last record per held decision (a replay after the resume may repeat one)."""
    last: dict[str, dict] = {}
    for b in read_channel(out, "decision_records"):
        r = json.loads(b)
        if r.get("review"):
            last[r["decision_id"]] = r
    return last


@pytest.mark.slow
@pytest.mark.redis
def test_pending_reviews_survive_kill_and_resume(tmp_path, redis_url, redis_client):
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "default.toml").write_text((DEFAULT_DIR / "default.toml").read_text() + RULE)
    events = tmp_path / "events.jsonl"
    write_jsonl(str(events), Generator(GenConfig(seed=4, users=300, items=150, events=10_000,
                                                 malformed_rate=0.0)).records())
    env = {**os.environ, "BESPOKE_PROGRESS_EVERY_S": "0", "BESPOKE_POLICY_DIR": str(packs),
           "BESPOKE_CONTROL_KEYS": json.dumps({KEY: {"secret": SECRET, "issuer": "alice",
                                                     "actions": ["review_decision"]}})}
    base = redis_url.rsplit("/", 1)[0]

    def cmd(out: Path, rec: Path, controls: Path | None = None, db: int = 1) -> list[str]:
        c = [sys.executable, "-m", "flows", "run", "--input", str(events), "--output",
             str(out), "--store", f"{base}/{db}", "--recovery-dir", str(rec),
             "--epoch-interval", "0.2"]
        return c + (["--controls", str(controls)] if controls else [])

    import redis

    for db in (1, 2, 3):  # a store of its own per run
        redis.Redis.from_url(f"{base}/{db}").flushdb()
    first = subprocess.run(cmd(tmp_path / "probe", tmp_path / "rec0", db=1), cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    asked = sorted((json.loads(b) for b in read_channel(tmp_path / "probe",
                                                        "review_requests")),
                   key=lambda q: q["ts"])
    assert len(asked) >= 10
    chosen = asked[len(asked) // 2]  # decided by the reviewer in the middle of the run
    controls = tmp_path / "controls.jsonl"
    controls.write_text(json.dumps(sign_control(
        {"type": "control", "event_id": "rv1", "ts": chosen["ts"] + 240_000,
         "action": "review_decision", "issued_by": "alice",
         "decision_id": chosen["decision_id"], "verdict": "approve"}, KEY, SECRET)) + "\n")

    whole = tmp_path / "whole"
    done = subprocess.run(cmd(whole, tmp_path / "rec-whole", controls, db=2), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = {d: r["review"]["status"] for d, r in _final(whole).items()}
    assert expected[chosen["decision_id"]] == "approved"

    out, rec = tmp_path / "killed", tmp_path / "rec"
    run = subprocess.Popen(cmd(out, rec, controls, db=3), cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while run.poll() is None and time.monotonic() < deadline:
        if out.exists() and any(json.loads(b)["decision_id"] == chosen["decision_id"]
                                for b in read_channel(out, "review_requests")):
            break
        time.sleep(0.02)
    assert run.poll() is None, "the run ended before the chosen offer was held"
    os.kill(run.pid, signal.SIGKILL)
    run.wait(30)
    resolved_before = set(_final(out))
    assert chosen["decision_id"] not in resolved_before  # still held at the kill

    resumed = subprocess.run(cmd(out, rec, controls, db=3), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = {d: r["review"]["status"] for d, r in _final(out).items()}
    assert got[chosen["decision_id"]] == "approved"
    offers = {json.loads(b)["id"] for b in read_channel(out, "offers")}
    assert chosen["decision_id"] in offers
    both = set(got) & set(expected)
    assert len(both) >= 0.9 * len(expected)
    assert {d: got[d] for d in both} == {d: expected[d] for d in both}
