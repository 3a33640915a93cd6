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
- **Converted and written in the background.** When a journal holds ``rows_per_file``
  records, a thread turns it into Arrow columns and a Parquet file, then deletes it. The
  conversion is native when ``bespoke_native`` is built (``archive_columns``: parsed and
  laid out as Arrow buffers without the GIL, so the worker does not wait for it; 0.4 s for
  63,000 real records, 94 MB, here) and the Python reference otherwise (``_row``: the same
  columns, 1.9 s with the GIL held); Parquet encoding runs without the GIL. The worker
  itself only appends the records' JSON bytes it already has. One write at a time: a slow
  disk slows the flow down; a failed write stops it at the first batch after the failure.
"""

from __future__ import annotations

import logging
import threading
from operator import itemgetter
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from features.channels import DECISION_RECORDS
from features.events import Outgoing
from features.native_ext import ext as _native

log = logging.getLogger(__name__)

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
_SPEC = [(f.name, "json" if f.name in _JSON else "int" if f.type == pa.int64() else
          "bool" if f.type == pa.bool_() else "str") for f in SCHEMA]


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
    """Appends each batch's records to the journal; hands a full journal to a thread that
    converts and writes it (``_write``)."""

    def __init__(self, root: Path, worker: int, rows_per_file: int,
                 native: bool = True) -> None:
        self._root, self._worker, self._rows = root, worker, rows_per_file
        self._native = native and _native is not None
        root.mkdir(parents=True, exist_ok=True)
        self._n = 0  # next part number (existing parts are never overwritten)
        self._in_journal = 0
        self._writer: threading.Thread | None = None
        self._failed: BaseException | None = None
        self._seq = 0
        for journal in self._journals():  # a crash left them: their records go first
            self._write(journal)
            self._seq = max(self._seq, _journal_seq(journal) + 1)
        self._open_journal()

    # ------------------------------------------------------------- journals
    def _open_journal(self) -> None:
        self._journal_path = self._root / f".journal-{self._worker}-{self._seq:06d}.jsonl"
        self._journal = open(self._journal_path, "ab")  # noqa: SIM115 - closed with its file
        self._seq += 1
        self._in_journal = 0

    def _journals(self) -> list[Path]:
        return sorted(self._root.glob(f".journal-{self._worker}-*.jsonl"), key=_journal_seq)

    # ------------------------------------------------------------- writing
    def _next_path(self) -> Path:
        path = self._root / f"part-{self._worker}-{self._n:06d}.parquet"
        while path.exists():  # a restarted worker never overwrites an earlier file
            self._n += 1
            path = self._root / f"part-{self._worker}-{self._n:06d}.parquet"
        self._n += 1
        return path

    def _write(self, journal: Path) -> None:
        """Write the records of ``journal`` as the next part (if any), then delete it."""
        table, skipped = _journal_rows(journal.read_bytes(), self._native)
        if skipped:  # the last line of a killed process; anything else is worth a look
            log.warning("record archive: %d line(s) of %s are not JSON and were skipped "
                        "(%d records kept)", skipped, journal.name, table.num_rows)
        if table.num_rows:
            path = self._next_path()
            tmp = path.with_name("." + path.name + ".tmp")
            pq.write_table(table, tmp)
            tmp.rename(path)  # readers never see half a file
        journal.unlink(missing_ok=True)

    def _write_in_background(self, journal: Path) -> None:
        self._wait()

        def run() -> None:
            try:
                self._write(journal)
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

    def write_batch(self, items: list[Outgoing]) -> None:
        if self._failed is not None:
            self._wait()  # raises
        recs = [it.value for it in items if it.channel == DECISION_RECORDS.name]
        if not recs:
            return
        recs.append(b"")
        self._journal.write(b"\n".join(recs))
        self._journal.flush()  # to the OS before the batch (and so its epoch) is done
        self._in_journal += len(recs) - 1
        if self._in_journal >= self._rows:
            self._journal.close()
            self._write_in_background(self._journal_path)
            self._open_journal()

    def close(self) -> None:
        self._journal.close()
        self._wait()
        self._write(self._journal_path)


def _journal_seq(path: Path) -> int:
    return int(path.stem.rsplit("-", 1)[1])


def journal_table(data: bytes, native: bool = True) -> pa.Table:
    """The archive table of a journal's text (one record per line; a line that is not
    JSON, cut short by a kill, is skipped). Native when built and ``native``, else the
    Python reference; both give the same table (``tests/connectors/test_record_archive.py``).

    >>> doc = {"id": "rec:1", "ts": 5, "suppressed": False, "output": {"items": ["A"]}}
    >>> t = journal_table(orjson.dumps(doc) + b"\\n" + b'{"id": "cut', native=False)
    >>> t.num_rows, t.column("output").to_pylist(), t.column("plan").to_pylist()
    (1, ['{"items":["A"]}'], [None])
    """
    return _journal_rows(data, native)[0]


def _journal_rows(data: bytes, native: bool) -> tuple[pa.Table, int]:
    """``journal_table`` and how many lines it skipped."""
    if native and _native is not None:
        try:
            rows, skipped, cols = _native.archive_columns(data, _SPEC)
        except ValueError:
            pass  # a field of an unexpected type: the reference says which, its own way
        else:
            return pa.Table.from_arrays(
                [_array(f.type, rows, c) for f, c in zip(SCHEMA, cols, strict=True)],
                schema=SCHEMA), skipped
    out, skipped = [], 0
    for line in data.splitlines():
        if line.strip():
            try:
                out.append(_row(orjson.loads(line)))
            except orjson.JSONDecodeError:
                skipped += 1
    return _table(out), skipped


def _array(typ: pa.DataType, rows: int, col: tuple) -> pa.Array:
    valid, nulls, values, offsets = col
    bufs = [None if valid is None else pa.py_buffer(valid)]
    if offsets is not None:
        bufs.append(pa.py_buffer(offsets))
    bufs.append(pa.py_buffer(values))
    return pa.Array.from_buffers(typ, rows, bufs, null_count=nulls)


def _table(rows: list[tuple]) -> pa.Table:
    """The reference's table of ``_row`` tuples."""
    if not rows:
        return SCHEMA.empty_table()
    cols = zip(*rows, strict=True)
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(cols, SCHEMA, strict=True)], schema=SCHEMA)


class RecordArchiveSink(DynamicSink[Outgoing]):
    def __init__(self, root: str | Path, rows_per_file: int = 50_000,
                 native: bool = True) -> None:
        self._root, self._rows, self._native = Path(root), rows_per_file, native

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ArchivePartition:
        return _ArchivePartition(self._root, worker_index, self._rows, self._native)


def read_archive(root: str | Path) -> pa.Table:
    files = sorted(Path(root).glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else SCHEMA.empty_table()
