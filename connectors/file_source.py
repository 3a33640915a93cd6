"""File input for the embedded mode: one Bytewax partition per file, resumable by line.

Reads JSONL/CSV/TSV lines (optionally gzip-compressed, by the ``.gz`` suffix) and Parquet
files (each row becomes one JSON object). Every record is emitted as a ``RawRecord`` with
its file name and line number (blank lines included), so dead letters point back at the exact line.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.dedup import RecentIds, mark_duplicates, split_resume
from connectors.linger import Linger
from features.validate import END_OF_PARTITION, RawRecord


def _lines(path: Path) -> Iterator[bytes]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                clean = {k: v for k, v in row.items() if v is not None}
                yield json.dumps(clean, separators=(",", ":")).encode()
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for line in f:
            yield line.rstrip(b"\r\n")


class _FilePartition(StatefulSourcePartition[RawRecord, object]):
    def __init__(self, path: Path, resume_at: int | None, batch_size: int,
                 recent: RecentIds | None = None, linger: Linger | None = None) -> None:
        self._path = path
        self._linger = linger
        self._name = path.name
        self._it = _lines(path)
        self._offset = 0
        self._batch = batch_size
        self._recent = recent
        self._ended = False
        # "received" = the file's modification time: the same file gives the same bytes out
        self._received = int(path.stat().st_mtime * 1000)
        for _ in range(resume_at or 0):
            next(self._it, None)
            self._offset += 1

    def next_batch(self) -> list[RawRecord]:
        out: list[RawRecord] = []
        for line in self._it:
            # a blank line is a record too: validation counts it as a dead letter ("blank")
            out.append(RawRecord(self._name, 0, self._offset, line, self._received))
            self._offset += 1
            if len(out) >= self._batch:
                break
        if not out:
            if self._ended:
                if self._linger is not None and self._linger.wait():
                    return []
                raise StopIteration
            self._ended = True  # one end marker (not an event, see END_OF_PARTITION)
            return [RawRecord(self._name, 0, self._offset, None, self._received,
                              END_OF_PARTITION)]
        return out if self._recent is None else mark_duplicates(out, self._recent)

    def next_awake(self) -> datetime | None:
        if self._ended and self._linger is not None:
            return datetime.now(UTC) + timedelta(seconds=self._linger.poll_s)
        return None

    def snapshot(self):
        if self._recent is None:
            return self._offset
        return (self._offset, self._recent.snapshot())


class FileSource(FixedPartitionedSource[RawRecord, object]):
    """Reads each of ``paths`` to its end (a finite source); with ``dedup_ids``, marks
    repeated event ids (``connectors.dedup``)."""

    def __init__(self, paths: Sequence[str | Path], batch_size: int = 1000,
                 dedup_ids: int = 0, linger: Linger | None = None) -> None:
        """``linger``: after its end marker, a partition waits until ``linger`` lets it
        end (``connectors.linger``)."""
        self._linger = linger
        self._paths = {str(Path(p)): Path(p) for p in paths}
        missing = [p for p in self._paths.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"input files not found: {missing}")
        self._batch = batch_size
        self._dedup_ids = dedup_ids

    def list_parts(self) -> list[str]:
        return list(self._paths)

    def build_part(self, step_id: str, for_part: str, resume_state) -> _FilePartition:
        offset, ids = split_resume(resume_state)
        recent = RecentIds(self._dedup_ids, ids) if self._dedup_ids else None
        return _FilePartition(self._paths[for_part], offset, self._batch, recent,
                              self._linger)
