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


class _ArchivePartition(StatelessSinkPartition[Outgoing]):
    def __init__(self, root: Path, worker: int, rows_per_file: int) -> None:
        self._root, self._worker, self._rows = root, worker, rows_per_file
        self._buf: list[dict] = []
        self._n = 0
        root.mkdir(parents=True, exist_ok=True)

    def _flush(self) -> None:
        if not self._buf:
            return
        cols = {f.name: [r.get(f.name) for r in self._buf] for f in SCHEMA}
        for name in _JSON:
            cols[name] = [orjson.dumps(v).decode() if v is not None else None
                          for v in cols[name]]
        path = self._root / f"part-{self._worker}-{self._n:06d}.parquet"
        while path.exists():  # a restarted worker never overwrites an earlier file
            self._n += 1
            path = self._root / f"part-{self._worker}-{self._n:06d}.parquet"
        pq.write_table(pa.Table.from_pydict(cols, schema=SCHEMA), path)
        self._n += 1
        self._buf = []

    def write_batch(self, items: list[Outgoing]) -> None:
        for it in items:
            if it.channel == "decision_records":
                self._buf.append(it.doc if it.doc is not None else json.loads(it.value))
        if len(self._buf) >= self._rows:
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
