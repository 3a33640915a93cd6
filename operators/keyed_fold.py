"""A keyed Bytewax step around a pure fold, with coalesced store mirroring and eviction.

``fold`` provides ``new()``, ``apply(state, item) -> outputs`` and
``rows(state, key) -> store writes`` (the views changed since the last call), and may
provide ``on_end(state) -> outputs`` for the end of a finite input. The step:

- applies every item of a key's batch and emits ``apply``'s outputs at once;
- mirrors state to the store: per event when ``mirror_every_s == 0`` (replay, tests),
  else at most once per key every ``mirror_every_s`` seconds and at end of input, so an
  active key costs one store write per period instead of one per event;
- drops a key's state after ``idle_evict_s`` seconds (wall clock) without input (the
  store's TTL still serves its last values) and when ``state.erased`` is set;
- snapshots state as pickled bytes for recovery (a copy, cheaper than ``deepcopy``).
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

_UTC = UTC


class Fold(Protocol):
    def new(self) -> Any: ...

    def apply(self, state: Any, item: Any) -> list: ...

    def rows(self, state: Any, key: str) -> list: ...


class _FoldLogic(StatefulBatchLogic):
    __slots__ = ("fold", "state", "key", "mirror", "idle", "flush_at", "evict_at")

    def __init__(self, fold: Fold, resume: bytes | None, mirror_s: float,
                 idle_s: float | None) -> None:
        self.fold = fold
        if resume is None:
            self.key, self.state = None, fold.new()
        else:
            self.key, self.state = pickle.loads(resume)
        self.mirror = timedelta(seconds=mirror_s) if mirror_s > 0 else None
        self.idle = timedelta(seconds=idle_s) if idle_s else None
        self.flush_at: datetime | None = None
        self.evict_at: datetime | None = None

    def on_batch(self, values: list) -> tuple[list, bool]:
        fold, state = self.fold, self.state
        if self.key is None:
            self.key = values[0][0]
        out: list = []
        if self.mirror is None:  # a row after every event: point-in-time tables
            for v in values:
                out.extend(fold.apply(state, v))
                out.extend(fold.rows(state, self.key))
        else:
            for v in values:
                out.extend(fold.apply(state, v))
        if getattr(state, "erased", False):
            return out, StatefulBatchLogic.DISCARD
        if self.mirror is None:
            if self.idle is not None:
                self.evict_at = datetime.now(_UTC) + self.idle
        else:
            now = datetime.now(_UTC)
            if self.flush_at is None:
                self.flush_at = now + self.mirror
            if self.idle is not None:
                self.evict_at = now + self.idle
        return out, StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list, bool]:
        now = datetime.now(_UTC)
        rows: list = []
        if self.flush_at is not None and now >= self.flush_at:
            rows = self.fold.rows(self.state, self.key)
            self.flush_at = None
        if self.evict_at is not None and now >= self.evict_at:
            return rows + self.fold.rows(self.state, self.key), StatefulBatchLogic.DISCARD
        return rows, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list, bool]:
        self.flush_at = None
        out = self.fold.rows(self.state, self.key)
        on_end = getattr(self.fold, "on_end", None)
        if on_end is not None:
            out.extend(on_end(self.state))
        return out, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        times = [t for t in (self.flush_at, self.evict_at) if t is not None]
        return min(times) if times else None

    def snapshot(self) -> bytes:
        return pickle.dumps((self.key, self.state), protocol=pickle.HIGHEST_PROTOCOL)


def keyed_fold(step_id: str, up: Stream, fold: Fold, mirror_every_s: float = 1.0,
               idle_evict_s: float | None = None) -> Stream:
    """``up`` is a keyed stream whose values are tuples starting with the key.

    Returns the (unkeyed) stream of everything ``fold`` emits, store writes included.
    """

    def build(resume: bytes | None) -> _FoldLogic:
        return _FoldLogic(fold, resume, mirror_every_s, idle_evict_s)

    keyed_out = op.stateful_batch(f"{step_id}_fold", up, build)
    return op.key_rm(f"{step_id}_unkey", keyed_out)
