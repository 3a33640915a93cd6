"""A YOOCHOOSE-like clicks file (``session,timestamp,item,category``), keyed by session as
the public session datasets are, for tuning ``flows evaluate --format yoochoose`` without
the real data: the generator's ``sessions`` profile (revisits, Zipf popularity, median
session of 3 views) with its views, clicks and cart adds written as clicks, each session a
key of its own (no user identity across sessions, no consent, catalog or stock events).
Seeded: the same file every time.

    python -m scripts.sessions_like out/sessions-like.dat --items 5000 --users 5000
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from connectors.generator import GenConfig, Generator

KINDS = ("page_view", "click", "add_to_cart")


def lines(seed: int = 5, events: int = 40_000, items: int = 5000, users: int = 5000
          ) -> list[str]:
    """The file's lines, header first."""
    cfg = GenConfig(seed=seed, events=events, items=items, users=users, malformed_rate=0.0,
                    profile="sessions")
    ids: dict[str, int] = {}
    out = ["session_id,timestamp,item_id,category"]
    for r in Generator(cfg).records():
        doc = json.loads(r.value)
        if doc.get("type") not in KINDS:
            continue
        sid = ids.setdefault(doc["session_id"], len(ids) + 1)
        when = datetime.fromtimestamp(doc["ts"] / 1000, UTC)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        out.append(f"{sid},{stamp},{doc['sku'].removeprefix('SKU')},0")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--users", type=int, default=5000)
    a = ap.parse_args(argv)
    text = lines(a.seed, a.events, a.items, a.users)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(text) + "\n")
    print(f"wrote {a.out}: {len(text) - 1:,} clicks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
