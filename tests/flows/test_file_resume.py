"""Output files across kill -9: a two-worker file run killed after some committed epochs and
resumed with one worker (which then owns the other worker's files too) writes every event
of every channel once: each worker's files are cut back to its last committed epoch before
anything is written again (``connectors.file_sink``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator, write_jsonl
from tests.flow_checks import committed_epoch

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = ("feed_updates", "offers", "configurations", "dead_letters", "decision_records")


def _cmd(events: Path, out: Path, rec: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "flows", "run", "--input", str(events), "--output", str(out),
            "--store", "memory", "--recovery-dir", str(rec), "--epoch-interval", "0.2",
            "--workers", str(workers)]


@pytest.mark.slow
def test_two_workers_killed_then_one_resumes_writes_each_event_once(tmp_path):
    events = tmp_path / "events.jsonl"
    write_jsonl(str(events), Generator(GenConfig(seed=9, items=150, users=300, events=12_000,
                                                 malformed_rate=0.01)).records())
    out, rec = tmp_path / "out", tmp_path / "rec"
    env = {**os.environ, "BESPOKE_PROGRESS_EVERY_S": "0"}
    env.pop("REDIS_URL", None)
    first = subprocess.Popen(_cmd(events, out, rec, 2), cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while first.poll() is None and time.monotonic() < deadline:
        if (out.exists() and len(read_channel(out, "feed_updates")) >= 1_500
                and committed_epoch(rec) >= 3):
            break
        time.sleep(0.05)
    assert first.poll() is None, "the run ended before it could be killed"
    os.kill(first.pid, signal.SIGKILL)
    first.wait(30)
    written = {p.name for p in (out / "feed_updates").glob("part-*.jsonl")}
    assert written == {"part-0.jsonl", "part-1.jsonl"}, written  # both workers wrote

    done = subprocess.run(_cmd(events, out, rec, 1), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for ch in CHANNELS:
        ids = Counter(orjson.loads(line)["id"] for line in read_channel(out, ch))
        repeated = {k: n for k, n in ids.items() if n > 1}
        assert not repeated, f"{ch}: {len(repeated)} ids repeated, e.g. {list(repeated)[:2]}"
    feeds = read_channel(out, "feed_updates")
    assert len(feeds) > 3_000, len(feeds)  # the resumed run finished the input
    assert len(read_channel(out, "dead_letters")) >= 50
