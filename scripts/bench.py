"""Benchmarks: print figures and write them to out/bench.json (``make bench``).

Each figure is ``name -> {value, unit, how}``; later work adds its figures to the same file.
Figures are medians of several runs on a shared 2-core machine: read them as rough.

    python -m scripts.bench            # all figures
    python -m scripts.bench --only thin_flow
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.generator import GenConfig, Generator, write_jsonl  # noqa: E402
from flows.main import RunConfig, run  # noqa: E402
from flows.settings import Settings  # noqa: E402

OUT = ROOT / "out" / "bench.json"
Figure = dict[str, dict]


def _median_runs(fn: Callable[[], float], runs: int) -> tuple[float, list[float]]:
    vals = [fn() for _ in range(runs)]
    return statistics.median(vals), vals


def bench_thin_flow(runs: int = 3, events: int = 100_000) -> Figure:
    """Whole thin flow, embedded: JSONL file in, JSONL files + in-process store out."""
    tmp = Path(tempfile.mkdtemp(prefix="bespoke-bench-"))
    path = tmp / "events.jsonl"
    counts = write_jsonl(str(path), Generator(GenConfig(seed=1, users=20_000, items=5_000,
                                                        events=events)).records())
    n = sum(counts.values())

    def once(workers: int) -> float:
        out = tmp / uuid.uuid4().hex
        cfg = RunConfig(inputs=[str(path)], output=str(out), store=f"memory://{out.name}",
                        settings=Settings(_env_file=None, progress_every_s=0))
        t0 = time.perf_counter()
        run(cfg, workers=workers)
        return n / (time.perf_counter() - t0)

    figs: Figure = {}
    results = {}
    for w in (1, 2):
        med, vals = _median_runs(lambda w=w: once(w), runs)
        results[w] = med
        figs[f"thin_flow_events_per_s_{w}w"] = {
            "value": round(med), "unit": "events/s",
            "how": f"median of {runs} runs ({', '.join(f'{v:,.0f}' for v in vals)}); {n} "
                   f"generated events (JSONL, 1% malformed) through validate, user and item "
                   f"features, candidates, score, feed decision, JSONL sink and in-process "
                   f"store; {w} worker thread(s) in one process; wall time incl. startup"}
    figs["thin_flow_2w_over_1w"] = {
        "value": round(results[2] / results[1], 2), "unit": "ratio",
        "how": "median 2-worker rate / median 1-worker rate, measured in the same run"}
    return figs


BENCHES: dict[str, Callable[[], Figure]] = {"thin_flow": bench_thin_flow}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", choices=list(BENCHES))
    a = ap.parse_args()
    figures: Figure = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name in a.only or list(BENCHES):
        print(f"== {name}", flush=True)
        for k, v in BENCHES[name]().items():
            figures[k] = v
            print(f"{k}: {v['value']} {v['unit']}  ({v['how']})", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2, sort_keys=True))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
