"""JSONL file sink for the embedded mode: ``DIR/<channel>/part-<worker>.jsonl``.

Each worker appends to its own files, so several workers never interleave lines. The sink
is exactly-once across a crash: at the end of every epoch it flushes its files and snapshots
their sizes. With a recovery store (``recovered=True``) the output folder belongs to the
flow: a worker first cuts every file of its partition back to the size of the last committed
epoch (a file not written by then, or every file if no epoch was committed, goes back to
empty), so a line torn by ``kill -9`` and the lines the resumed run emits again are gone
before they are written once more. Without a recovery store a run appends to what is there.

Items come keyed by the partition of the worker that made them (``key_by_worker``), so the
flow needs ``worker_index_probe`` before this sink (every delivery mode builds it).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import IO

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from connectors.epoch_sink import MAX_WORKERS, current_worker, part_name
from features.events import Outgoing

Sizes = dict[str, int]  # channel -> bytes of the partition's file at a committed epoch


def _existing(root: Path, channels: list[str], name: str) -> Sizes:
    sizes = {}
    for channel in channels:
        with contextlib.suppress(FileNotFoundError):
            sizes[channel] = (root / channel / name).stat().st_size
    return sizes


class _FilePartition(StatefulSinkPartition[Outgoing, Sizes]):
    def __init__(self, root: Path, channels: list[str], worker_index: int,
                 resume: Sizes | None, recovered: bool) -> None:
        self._root = root
        self._name = f"part-{worker_index}.jsonl"
        self._files: dict[str, IO[bytes]] = {}
        if resume is None and not recovered:  # no recovery store: what is there stays
            self._sizes = _existing(root, channels, self._name)
        else:  # back to the last committed epoch (to empty if none was committed)
            resume = resume or {}
            for channel, size in _existing(root, channels, self._name).items():
                keep = resume.get(channel, 0)
                if size > keep:
                    os.truncate(root / channel / self._name, keep)
            self._sizes = dict(resume)

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
            self._files[ch].flush()  # readable while the flow runs

    def snapshot(self) -> Sizes:
        for channel, f in self._files.items():
            f.flush()
            self._sizes[channel] = f.tell()
        return dict(self._sizes)

    def close(self) -> None:
        for f in self._files.values():
            f.close()


class JsonlDirSink(FixedPartitionedSink[Outgoing, Sizes]):
    """Items ``(part_name(worker), outgoing)``; one partition, so one file per channel, per
    worker (worker 0 also owns the partitions of workers a resumed run no longer has)."""

    def __init__(self, root: str | Path, recovered: bool = False) -> None:
        self._root = Path(root)
        self._recovered = recovered
        self._channels: list[str] | None = None
        self._lock = threading.Lock()

    def _channel_dirs(self) -> list[str]:
        """The channel folders there before this run wrote (listed once, not once for each
        of the up to ``MAX_WORKERS`` partitions)."""
        with self._lock:
            if self._channels is None:
                self._channels = sorted(p.name for p in self._root.iterdir() if p.is_dir()) \
                    if self._root.is_dir() else []
            return self._channels

    def list_parts(self) -> list[str]:
        index, count = current_worker()
        orphans = range(count, MAX_WORKERS) if index == 0 else ()
        return [part_name(index)] + [part_name(i) for i in orphans]

    def part_fn(self, item_key: str) -> int:
        return int(item_key[1:])

    def build_part(self, step_id: str, for_part: str,
                   resume_state: Sizes | None) -> _FilePartition:
        return _FilePartition(self._root, self._channel_dirs(), int(for_part[1:]),
                              resume_state, self._recovered)


def read_channel(root: str | Path, channel: str) -> list[bytes]:
    """All complete lines written to ``channel`` under ``root`` by every worker: a last
    line without its newline (being written, or cut short by a kill) is left out."""
    out: list[bytes] = []
    for p in sorted((Path(root) / channel).glob("part-*.jsonl")):
        data = p.read_bytes()
        out.extend(line for line in data[:data.rfind(b"\n") + 1].splitlines() if line)
    return out
