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


def test_the_image_holds_every_package_the_flows_import():
    """The Dockerfile copies each of our packages (a missing one fails only in Docker,
    which our machines do not have) and the scripts compose runs."""
    import re

    copied = set(re.findall(r"^COPY (\w+) \1$", (ROOT / "Dockerfile").read_text(), re.M))
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages <= copied, packages - copied
    compose = (ROOT / "docker-compose.yml").read_text()
    for module in re.findall(r'"-m", "([\w.]+)"', compose):
        assert (ROOT / (module.replace(".", "/") + ".py")).exists(), module
