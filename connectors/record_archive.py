"""Parquet archive of decision records: ``DIR/part-<worker>-<n>.parquet``.

Records are buffered per worker and written as a row group every ``rows_per_file`` records
and at close; nested fields (tool calls, verdicts, features, output) are JSON columns. The
write is synchronous: a slow disk slows the flow down, it never drops a record.
"""

from __future__ import annotations

import json
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
_IS_JSON = tuple(n in _JSON for n in _NAMES)


class _ArchivePartition(StatelessSinkPartition[Outgoing]):
    """Records are turned into column values as they arrive (strings and numbers, not the
    records' dicts: a buffer of dicts would keep the garbage collector busy)."""

    def __init__(self, root: Path, worker: int, rows_per_file: int) -> None:
        self._root, self._worker, self._rows = root, worker, rows_per_file
        self._cols: tuple[list, ...] = tuple([] for _ in _NAMES)
        self._n = 0
        root.mkdir(parents=True, exist_ok=True)

    def _flush(self) -> None:
        if not self._cols[0]:
            return
        path = self._root / f"part-{self._worker}-{self._n:06d}.parquet"
        while path.exists():  # a restarted worker never overwrites an earlier file
            self._n += 1
            path = self._root / f"part-{self._worker}-{self._n:06d}.parquet"
        pq.write_table(pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(self._cols, SCHEMA, strict=True)],
            schema=SCHEMA), path)
        self._n += 1
        self._cols = tuple([] for _ in _NAMES)

    def write_batch(self, items: list[Outgoing]) -> None:
        cols = self._cols
        dumps = orjson.dumps
        for it in items:
            if it.channel != "decision_records":
                continue
            doc = it.doc if it.doc is not None else json.loads(it.value)
            for col, name, is_json in zip(cols, _NAMES, _IS_JSON, strict=True):
                v = doc.get(name)
                col.append(dumps(v).decode() if is_json and v is not None else v)
        if len(cols[0]) >= self._rows:
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
