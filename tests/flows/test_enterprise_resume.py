"""ERP reservations are idempotent across kill -9 and resume: a flow killed while offers
were being granted and resumed from its recovery directory replays those decisions, and
the ERP (the reference service as its own process) holds exactly one reservation per
granted offer: the replays carry the same Idempotency-Key (derived from the decision id),
even though the in-memory idempotency ledger of the killed process is gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator, write_jsonl
from scripts.servers import enterprise_service

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_reservations_stay_one_per_offer_across_kill_and_resume(tmp_path):
    events = tmp_path / "events.jsonl"
    write_jsonl(str(events), Generator(GenConfig(seed=42, items=200, users=300,
                                                 events=15_000, malformed_rate=0.0)).records())
    out, rec = tmp_path / "out", tmp_path / "rec"
    with enterprise_service(seed=42, items=200) as url:
        env = {**os.environ, "BESPOKE_PROGRESS_EVERY_S": "0", "BESPOKE_ENTERPRISE_URL": url,
               "BESPOKE_ENTERPRISE_TIMEOUT_MS": "2000"}
        env.pop("REDIS_URL", None)
        cmd = [sys.executable, "-m", "flows", "run", "--input", str(events), "--output",
               str(out), "--store", "memory", "--recovery-dir", str(rec),
               "--epoch-interval", "0.2"]
        first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while first.poll() is None and time.monotonic() < deadline:
            if out.exists() and len(read_channel(out, "offers")) >= 20:
                break
            time.sleep(0.05)
        assert first.poll() is None, "the run ended before it could be killed"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
        at_kill = httpx.get(f"{url}/admin/stats").json()
        resumed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                 timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        stats = httpx.get(f"{url}/admin/stats").json()
    offers = {json.loads(b)["id"] for b in read_channel(out, "offers")}
    records = [json.loads(b) for b in read_channel(out, "decision_records")]
    # every decision that got a reservation: one key per decision id; the file sink keeps
    # each record once across the kill (cut back to the last committed epoch)
    assert len({r["id"] for r in records}) == len(records)
    reserved = {c["idempotency_key"] for r in records for c in r["tool_calls"]
                if c["tool"] == "erp_reserve_stock" and c["outcome"] in ("ok", "replayed")}
    assert reserved <= {f"reserve:{d}" for d in offers}
    assert len(offers) >= 20 and len(reserved) >= 20
    total = sum(stats["reservations"].values())
    print(f"offers {len(offers)}, reserved {len(reserved)}, ERP reservations "
          f"{stats['reservations']}, replays at the ERP {stats['idempotent_replays']} (at the "
          f"kill: {at_kill['reservations']})")
    assert sum(at_kill["reservations"].values()) >= 1, "killed before any reservation"
    assert total == len(reserved), (total, len(reserved))  # no reservation twice
