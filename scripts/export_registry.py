"""Refresh the feature registry contract (schemas/feature_registry.json) and its lock.

The lock (features/registry.lock.json) records the fingerprint of every released view
version. Run this (``make registry``) after bumping a view's version; the test suite fails
when a definition changed without a bump, or when these files are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.definitions import REGISTRY  # noqa: E402

LOCK = ROOT / "features" / "registry.lock.json"
EXPORT = ROOT / "schemas" / "feature_registry.json"


def render_export() -> str:
    return json.dumps(REGISTRY.export(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    old = json.loads(LOCK.read_text()) if LOCK.exists() else {}
    problems = REGISTRY.check_against(old)
    if problems:
        print("refusing to update the lock:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    merged = {**old, **REGISTRY.lock()}
    LOCK.write_text(json.dumps(dict(sorted(merged.items())), indent=2) + "\n")
    EXPORT.write_text(render_export())
    print(f"wrote {LOCK.relative_to(ROOT)} and {EXPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
