"""Recommendation quality figures (``make quality``): ``flows evaluate`` on generated traffic
(the default profile and the session-like one) and on the OTTO sample, with the learned
ranker and with its heuristic fallback alone, beside the baselines. Prints a Markdown table
(HR@10 / MRR@10) and writes ``out/quality.json``. Session-kNN is on as a source
(``BESPOKE_SESSION_KNN``). Deterministic: same code, same numbers.

    python -m scripts.quality
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from connectors.generator import GenConfig, Generator, write_jsonl
from flows.evaluate import evaluate
from flows.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
OTTO = ROOT.parent / "shared" / "data" / "otto-sample"


def datasets(tmp: Path) -> list[tuple[str, list[str], str]]:
    """(name, files, format): generated data written under ``tmp``, and the OTTO sample."""
    out = []
    for name, cfg in (("generated, 20k events", GenConfig(seed=7, events=20_000,
                                                           malformed_rate=0.0)),
                      ("generated `--profile sessions`, 30k events",
                       GenConfig(seed=3, events=30_000, malformed_rate=0.0,
                                 profile="sessions"))):
        path = tmp / f"{cfg.profile}.jsonl"
        write_jsonl(str(path), Generator(cfg).records())
        out.append((name, [str(path)], "native"))
    otto = sorted(str(p) for p in OTTO.glob("*.jsonl"))
    if otto:
        out.append(("OTTO sample", otto, "otto"))
    return out


def _pair(r: dict) -> str:
    return f"{r['hr@10']:.3f} / {r['mrr@10']:.3f}"


def main() -> int:
    s = Settings(_env_file=None, session_knn=True)
    rows, report = [], {}
    with tempfile.TemporaryDirectory(prefix="bespoke-quality-") as tmp:
        for name, files, fmt in datasets(Path(tmp)):
            learned = evaluate(files, fmt, (10,), s)
            heuristic = evaluate(files, fmt, (10,), s, baselines=[], learned=False)
            res = learned["results"]
            best_hr = max((v["hr@10"], k) for k, v in res.items() if k != "bespoke")
            best_mrr = max((v["mrr@10"], k) for k, v in res.items() if k != "bespoke")
            b = res["bespoke"]
            rows.append(f"| {name} ({learned['targets']:,} targets) | {_pair(b)} | "
                        f"{_pair(heuristic['results']['bespoke'])} | "
                        f"{best_hr[1]} {best_hr[0]:.3f} / {best_mrr[1]} {best_mrr[0]:.3f} | "
                        f"{b['hr@10'] / best_hr[0] - 1:+.1%} / "
                        f"{b['mrr@10'] / best_mrr[0] - 1:+.1%} |")
            report[name] = {"learned": learned, "heuristic": heuristic}
    print("| data | Bespoke (learned) | heuristic alone | best baseline (HR / MRR) | "
          "learned vs best |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    out = ROOT / "out" / "quality.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
