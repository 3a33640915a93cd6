"""Parquet feature tables: one folder per feature view, one file per worker.

Rows are ``StoreWrite``s (a view's fields for one key as of its event time); the table of a
view has columns ``key``, ``ts`` and the view's declared fields, typed from the registry.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from features.registry import FeatureView, Registry
from features.store import StoreOp, StoreWrite

_TYPES = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "list[str]": pa.string()}


def view_schema(view: FeatureView) -> pa.Schema:
    return pa.schema([("key", pa.string()), ("ts", pa.int64())]
                     + [(f.name, _TYPES[f.dtype]) for f in view.fields])


class _ParquetPartition(StatelessSinkPartition[StoreOp]):
    def __init__(self, root: Path, registry: Registry, worker: int, rows_per_group: int) -> None:
        self._root = root
        self._views = {v.store_prefix: v for v in registry}
        self._worker = worker
        self._group = rows_per_group
        self._buf: dict[str, list[StoreWrite]] = {}
        self._writers: dict[str, pq.ParquetWriter] = {}

    def _flush(self, prefix: str) -> None:
        rows = self._buf.pop(prefix, [])
        if not rows:
            return
        view = self._views[prefix]
        schema = view_schema(view)
        cols = {"key": [r.key for r in rows], "ts": [r.ts for r in rows]}
        for f in view.fields:
            cols[f.name] = [r.fields.get(f.name) for r in rows]
        table = pa.Table.from_pydict(cols, schema=schema)
        w = self._writers.get(prefix)
        if w is None:
            d = self._root / prefix
            d.mkdir(parents=True, exist_ok=True)
            w = self._writers[prefix] = pq.ParquetWriter(d / f"part-{self._worker}.parquet",
                                                         schema)
        w.write_table(table)

    def write_batch(self, items: list[StoreOp]) -> None:
        for it in items:
            if isinstance(it, StoreWrite) and it.view in self._views:
                buf = self._buf.setdefault(it.view, [])
                buf.append(it)
                if len(buf) >= self._group:
                    self._flush(it.view)

    def close(self) -> None:
        for prefix in list(self._buf):
            self._flush(prefix)
        for w in self._writers.values():
            w.close()


class ParquetFeatureSink(DynamicSink[StoreOp]):
    def __init__(self, root: str | Path, registry: Registry, rows_per_group: int = 50_000):
        self._root = Path(root)
        self._registry = registry
        self._group = rows_per_group

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ParquetPartition:
        return _ParquetPartition(self._root, self._registry, worker_index, self._group)


def read_view(root: str | Path, prefix: str) -> pa.Table:
    """The whole table of one view (all workers' files)."""
    files = sorted((Path(root) / prefix).glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files])
