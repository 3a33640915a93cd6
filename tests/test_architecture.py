"""The dependency direction (docs/architecture.md), checked by import-linter contracts."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 3 kept, 0 broken" in out.stdout


def test_every_setting_is_documented():
    """docs/configuration.md names every field of ``Settings`` (as ``BESPOKE_<NAME>``, or
    ``_<SUFFIX>`` in a row that groups several)."""
    import re

    from flows.settings import Settings

    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = []
    for name in Settings.model_fields:
        n = name.upper()
        suffixes = [n] + [n[i + 1:] for i, c in enumerate(n) if c == "_"]
        if not (re.search(rf"`(BESPOKE_)?{n}`", doc)
                or any(f"`_{suf}`" in doc for suf in suffixes)
                or re.search(rf"BESPOKE_{n}\b", doc)):
            missing.append(name)
    assert missing == []
