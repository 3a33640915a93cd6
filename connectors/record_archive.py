"""Parquet archive of decision records: ``DIR/part-<worker>-<n>.parquet``.

Each worker writes a file every ``rows_per_file`` records and at close; nested fields (tool
calls, verdicts, features, output) are JSON columns. Nothing is dropped, and the worker is
not stalled by the archive:

- **Journal.** Every batch of records is appended to the worker's journal
  (``DIR/.journal-<worker>-<n>.jsonl``, the records' JSON lines) and handed to the OS before
  the batch is done, so what an epoch commits is on disk even if the process is killed
  (not synced: a power loss can take the last seconds). A worker that starts and finds its
  journals (a crash) writes them to Parquet first. A record can so appear twice (once from
  the journal, once replayed after recovery): the archive is at-least-once, like the topics;
  records carry their deterministic ids.
- **Columns as they come.** Rows are turned into Arrow columns every ``chunk_rows`` (256)
  records, a millisecond or two at a time, not all at once at the end of a file (0.3-0.5 s
  for 50,000 rows: a stall that every decision behind it waited for).
- **Write in the background.** A full file is encoded and written by a thread (Parquet
  encoding runs without the GIL), then its journal is deleted. One write at a time: a slow
  disk slows the flow down; a failed write stops it at the first batch after the failure.
"""

from __future__ import annotations

import threading
from operator import itemgetter
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from features.events import RECORD_CHANNEL, Outgoing

SCHEMA = pa.schema([
    ("id", pa.string()), ("ts", pa.int64()), ("decision_id", pa.string()),
    ("decision_type", pa.string()), ("suppressed", pa.bool_()), ("user_ref", pa.string()),
    ("trigger_event_id", pa.string()), ("goal", pa.string()), ("plan", pa.string()),
    ("plan_version", pa.string()), ("model_version", pa.string()),
    ("policy_pack", pa.string()), ("policy_version", pa.string()),
    ("explanation", pa.string()), ("tool_calls", pa.string()), ("features", pa.string()),
    ("verdicts", pa.string()), ("shadow_differences", pa.string()),
    ("fallbacks", pa.string()), ("output", pa.string()),
])
_JSON = ("tool_calls", "features", "verdicts", "shadow_differences", "fallbacks", "output")


# pyarrow imports pandas (when installed) on its first array conversion: a stall of ~0.4 s in
# the middle of a stream, taken here at start instead
pa.array([], type=pa.string())
_NAMES = tuple(f.name for f in SCHEMA)
_SCALAR_NAMES = tuple(n for n in _NAMES if n not in _JSON)
assert _NAMES == _SCALAR_NAMES + _JSON  # rows are (scalars..., JSON texts...)
_scalars = itemgetter(*_SCALAR_NAMES)


def _row(doc: dict) -> tuple:
    """A record's column values: its scalars as they are, its nested fields as JSON text
    (``None`` stays null). Text, not orjson's bytes: those keep their encoder's spare
    capacity, and 50,000 rows of them cost more memory traffic than the decode."""
    try:
        head = _scalars(doc)
    except KeyError:  # a record built without every field
        head = tuple(doc.get(n) for n in _SCALAR_NAMES)
    dumps = orjson.dumps
    return head + tuple(None if (v := doc.get(n)) is None else dumps(v).decode() for n in _JSON)


class ArchiveWriteFailed(RuntimeError):
    pass


class _ArchivePartition(StatelessSinkPartition[Outgoing]):
    """Records are turned into rows of column values as they arrive (strings and numbers,
    not the records' dicts: a buffer of dicts would keep the garbage collector busy; tuples
    of atoms are untracked by it), and rows into Arrow record batches every ``chunk_rows``."""

    def __init__(self, root: Path, worker: int, rows_per_file: int,
                 chunk_rows: int = 256) -> None:
        self._root, self._worker, self._rows, self._chunk = root, worker, rows_per_file, \
            chunk_rows
        root.mkdir(parents=True, exist_ok=True)
        self._n = 0  # next part number (existing parts are never overwritten)
        self._buf: list[tuple] = []  # rows not yet in a record batch
        self._batches: list[pa.RecordBatch] = []
        self._in_batches = 0
        self._writer: threading.Thread | None = None
        self._failed: BaseException | None = None
        self._seq = 0
        for journal in self._journals():  # a crash left them: their records go first
            self._write(self._recovered(journal), journal)
            self._seq = max(self._seq, _journal_seq(journal) + 1)
        self._open_journal()

    # ------------------------------------------------------------- journals
    def _open_journal(self) -> None:
        self._journal_path = self._root / f".journal-{self._worker}-{self._seq:06d}.jsonl"
        self._journal = open(self._journal_path, "ab")  # noqa: SIM115 - closed with its file
        self._seq += 1

    def _journals(self) -> list[Path]:
        return sorted(self._root.glob(f".journal-{self._worker}-*.jsonl"), key=_journal_seq)

    @staticmethod
    def _recovered(journal: Path) -> pa.Table:
        rows = []
        for line in journal.read_bytes().splitlines():
            try:
                rows.append(_row(orjson.loads(line)))
            except orjson.JSONDecodeError:
                continue  # the last line of a killed process may be cut short
        return _table(rows)

    # ------------------------------------------------------------- writing
    def _next_path(self) -> Path:
        path = self._root / f"part-{self._worker}-{self._n:06d}.parquet"
        while path.exists():  # a restarted worker never overwrites an earlier file
            self._n += 1
            path = self._root / f"part-{self._worker}-{self._n:06d}.parquet"
        self._n += 1
        return path

    def _write(self, table: pa.Table, journal: Path) -> None:
        """Write ``table`` as the next part (if it has rows), then delete ``journal``."""
        if table.num_rows:
            path = self._next_path()
            tmp = path.with_name("." + path.name + ".tmp")
            pq.write_table(table, tmp)
            tmp.rename(path)  # readers never see half a file
        journal.unlink(missing_ok=True)

    def _write_in_background(self, table: pa.Table, journal: Path) -> None:
        self._wait()

        def run() -> None:
            try:
                self._write(table, journal)
            except BaseException as e:  # noqa: BLE001 - reported to the worker
                self._failed = e

        self._writer = threading.Thread(target=run, name="record-archive", daemon=True)
        self._writer.start()

    def _wait(self) -> None:
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if self._failed is not None:
            raise ArchiveWriteFailed(f"record archive write failed: {self._failed!r}")

    def _convert(self) -> None:
        if self._buf:
            self._batches.append(_batch(self._buf))
            self._in_batches += len(self._buf)
            self._buf = []

    def _take_file(self) -> tuple[pa.Table, Path]:
        """The records so far as one table, and the journal that holds them (closed)."""
        self._convert()
        table = pa.Table.from_batches(self._batches, schema=SCHEMA)
        self._batches, self._in_batches = [], 0
        self._journal.close()
        return table, self._journal_path

    def write_batch(self, items: list[Outgoing]) -> None:
        if self._failed is not None:
            self._wait()  # raises
        recs = [it for it in items if it.channel == RECORD_CHANNEL]
        if not recs:
            return
        self._journal.write(b"".join([it.value + b"\n" for it in recs]))
        self._journal.flush()  # to the OS before the batch (and so its epoch) is done
        buf = self._buf
        for it in recs:
            buf.append(_row(it.doc if it.doc is not None else orjson.loads(it.value)))
        if len(buf) >= self._chunk:
            self._convert()
        if self._in_batches + len(self._buf) >= self._rows:
            self._write_in_background(*self._take_file())
            self._open_journal()

    def close(self) -> None:
        table, journal = self._take_file()
        self._wait()
        self._write(table, journal)


def _journal_seq(path: Path) -> int:
    return int(path.stem.rsplit("-", 1)[1])


def _batch(rows: list[tuple]) -> pa.RecordBatch:
    cols = zip(*rows, strict=True)
    return pa.RecordBatch.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(cols, SCHEMA, strict=True)], schema=SCHEMA)


def _table(rows: list[tuple]) -> pa.Table:
    return pa.Table.from_batches([_batch(rows)] if rows else [], schema=SCHEMA)


class RecordArchiveSink(DynamicSink[Outgoing]):
    def __init__(self, root: str | Path, rows_per_file: int = 50_000) -> None:
        self._root, self._rows = Path(root), rows_per_file

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ArchivePartition:
        return _ArchivePartition(self._root, worker_index, self._rows)


def read_archive(root: str | Path) -> pa.Table:
    files = sorted(Path(root).glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else SCHEMA.empty_table()
