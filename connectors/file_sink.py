"""JSONL file sink for the embedded mode: ``DIR/<channel>/part-<worker>.jsonl``.

Each worker appends to its own files, so several workers never interleave lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from features.events import Outgoing


class _FilePartition(StatelessSinkPartition[Outgoing]):
    def __init__(self, root: Path, worker_index: int) -> None:
        self._root = root
        self._name = f"part-{worker_index}.jsonl"
        self._files: dict[str, IO[bytes]] = {}

    def _file(self, channel: str) -> IO[bytes]:
        f = self._files.get(channel)
        if f is None:
            d = self._root / channel
            d.mkdir(parents=True, exist_ok=True)
            f = self._files[channel] = open(d / self._name, "ab")  # noqa: SIM115
        return f

    def write_batch(self, items: list[Outgoing]) -> None:
        touched = set()
        for it in items:
            f = self._file(it.channel)
            f.write(it.value)
            f.write(b"\n")
            touched.add(it.channel)
        for ch in touched:
            self._files[ch].flush()

    def close(self) -> None:
        for f in self._files.values():
            f.close()


class JsonlDirSink(DynamicSink[Outgoing]):
    def __init__(self, root: str | Path) -> None:
        self._root = Path(root)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FilePartition:
        return _FilePartition(self._root, worker_index)


def read_channel(root: str | Path, channel: str) -> list[bytes]:
    """All lines written to ``channel`` under ``root`` by every worker."""
    out: list[bytes] = []
    for p in sorted((Path(root) / channel).glob("part-*.jsonl")):
        out.extend(line for line in p.read_bytes().splitlines() if line)
    return out
