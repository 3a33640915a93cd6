"""Policy pack files: read every ``*.toml`` of a directory (the flow validates them)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "policies" / "packs"


def read_pack_files(directory: str | Path | None = None) -> list[tuple[str, str]]:
    """(text, file name) of every pack file, sorted by name (deterministic)."""
    d = Path(directory) if directory else DEFAULT_DIR
    return [(p.read_text(), p.name) for p in sorted(d.glob("*.toml"))]
