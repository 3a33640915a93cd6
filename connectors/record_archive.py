"""Parquet archive of decision records: ``DIR/part-<worker>-<n>.parquet``.

Records are buffered per worker and written as a row group every ``rows_per_file`` records
and at close; nested fields (tool calls, verdicts, features, output) are JSON columns. The
write is synchronous: a slow disk slows the flow down, it never drops a record.
"""

from __future__ import annotations

import json
from operator import itemgetter
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from features.events import Outgoing

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


class _ArchivePartition(StatelessSinkPartition[Outgoing]):
    """Records are turned into rows of column values as they arrive (strings and numbers,
    not the records' dicts: a buffer of dicts would keep the garbage collector busy; tuples
    of atoms are untracked by it)."""

    def __init__(self, root: Path, worker: int, rows_per_file: int) -> None:
        self._root, self._worker, self._rows = root, worker, rows_per_file
        self._buf: list[tuple] = []
        self._n = 0
        root.mkdir(parents=True, exist_ok=True)

    def _flush(self) -> None:
        if not self._buf:
            return
        path = self._root / f"part-{self._worker}-{self._n:06d}.parquet"
        while path.exists():  # a restarted worker never overwrites an earlier file
            self._n += 1
            path = self._root / f"part-{self._worker}-{self._n:06d}.parquet"
        cols = zip(*self._buf, strict=True)
        pq.write_table(pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(cols, SCHEMA, strict=True)],
            schema=SCHEMA), path)
        self._n += 1
        self._buf = []

    def write_batch(self, items: list[Outgoing]) -> None:
        buf = self._buf
        for it in items:
            if it.channel == "decision_records":
                buf.append(_row(it.doc if it.doc is not None else json.loads(it.value)))
        if len(buf) >= self._rows:
            self._flush()

    def close(self) -> None:
        self._flush()


class RecordArchiveSink(DynamicSink[Outgoing]):
    def __init__(self, root: str | Path, rows_per_file: int = 50_000) -> None:
        self._root, self._rows = Path(root), rows_per_file

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ArchivePartition:
        return _ArchivePartition(self._root, worker_index, self._rows)


def read_archive(root: str | Path) -> pa.Table:
    files = sorted(Path(root).glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else SCHEMA.empty_table()
