"""A keyed Bytewax step around a pure fold, with state sharded and messages batched.

Bytewax's per-key machinery costs a few microseconds per item and per touched key, which
caps a flow with several keyed steps far below what the folds themselves need. Here the
Bytewax key is a *shard* (``crc32(entity key) % shards``): each input batch is grouped into
one message per shard, and a shard's logic holds the fold state of all its entities.

``fold`` provides ``new()``, ``apply(state, item) -> outputs`` and
``rows(state, key) -> store writes`` (the views changed since the last call), and may
provide ``on_end(state) -> outputs`` (and ``on_end_shared(shared)``) for the end of a
finite input. The step:

- applies items in arrival order per entity (a shard keeps the order of its input);
- mirrors state to the store per event when ``mirror_every_s == 0`` (replay), else once
  per ``mirror_every_s`` seconds per shard for every entity changed, and at end of input;
- drops an entity's state when ``state.erased`` is set, and after ``idle_evict_s`` seconds
  (wall clock) without input (the store's TTL keeps serving its last values);
- snapshots each touched shard whole (pickled) when ``snapshots`` is on: recovery cost
  grows with state per shard, so large deployments raise ``shards``.

A fold that defines ``new_shard()`` (a native shard, see ``features.native``) gets the
whole batch of a shard in one call: the shard holds the states and their dirty set, and
answers ``apply(items, per_event)``, ``flush()``, ``evict(keys)``, ``dump()``/``load()``.

A fold that also defines ``new_shared()`` and ``apply_shared(shared, payload)`` gets one
*shared* state per shard, passed as a third argument to ``apply``; ``Broadcast`` items
(see ``broadcast``) go to ``apply_shared`` of every shard, in stream order: this is how
control events (a policy switch) reach every worker's decisions.

Entity keys are routed with crc32, not Python's ``hash``: every process agrees.

Input and output are chunk streams (see ``operators.chunks``): each activation of a shard
emits everything its fold returned as one chunk.
"""

from __future__ import annotations

import pickle
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

_UTC = UTC


_SNAPSHOT_HOOK: list[Callable[[str, int], None] | None] = [None]


def on_snapshot(hook: Callable[[str, int], None] | None) -> None:
    """Call ``hook(step id, bytes)`` for every shard snapshot taken (the flow's metrics)."""
    _SNAPSHOT_HOOK[0] = hook


def _observed(step: str, blob: bytes | None) -> bytes | None:
    hook = _SNAPSHOT_HOOK[0]
    if hook is not None and blob is not None:
        hook(step, len(blob))
    return blob


class Fold(Protocol):
    def new(self) -> Any: ...

    def apply(self, state: Any, item: Any, *shared: Any) -> list: ...

    def rows(self, state: Any, key: str) -> list: ...


class Broadcast(NamedTuple):
    shard: int
    payload: Any


def _in_event_order(items: list, kind: type) -> list:
    """``items`` with those of type ``kind`` (fields ``ts``, ``event_id``) gathered at the
    first one's place in event-time order: they come from several upstream shards in an
    order that depends on batching (native shards do the same, ``native/src/shard.rs``)."""
    picked: list[Any] = [x for x in items if type(x) is kind]
    if len(picked) < 2:
        return items
    picked.sort(key=lambda h: (h.ts, h.event_id, h[0]))
    out: list = []
    for x in items:
        if type(x) is kind:
            out += picked
            picked = []
        else:
            out.append(x)
    return out


def broadcast(step_id: str, up: Stream[list], shards: int) -> Stream[list]:
    """Chunks with one ``Broadcast`` copy of every item for each of ``shards`` shards."""
    def copies(chunks: list) -> list:
        out = [Broadcast(s, x) for c in chunks for x in c for s in range(shards)]
        return [out] if out else []

    return op.flat_map_batch(step_id, up, copies)


class _ShardLogic(StatefulBatchLogic):
    def __init__(self, fold: Fold, key_of: Callable[[Any], str], resume: bytes | None,
                 mirror_s: float, idle_s: float | None, snapshots: bool) -> None:
        self.remirror = False  # set by remirror_restored(): rows owed to a fresh store
        self.fold = fold
        self.key_of = key_of
        self.states: dict[str, Any] = {}
        self.dirty: set[str] = set()
        self.uses_shared = hasattr(fold, "new_shared")
        self.shared = fold.new_shared() if self.uses_shared else None  # type: ignore[attr-defined]
        if resume:
            self.states, self.dirty, self.shared = pickle.loads(resume)
        self.mirror = timedelta(seconds=mirror_s) if mirror_s > 0 else None
        self.idle_s = idle_s
        self.seen: dict[str, float] = {}  # entity -> monotonic time of its last input
        self.flush_at: datetime | None = None
        self.sweep_at: datetime | None = None
        self.snapshots = snapshots
        self.phase: float | None = None

    def remirror_restored(self) -> None:
        """A resumed shard whose store did not survive the restart (in-process): the rows of
        every restored entity holding data (``fold.touch``) go out before the shard's next
        input, or at its end."""
        touch = getattr(self.fold, "touch", None)
        if touch is not None:
            self.dirty |= {k for k, st in self.states.items() if touch(st)}
            self.remirror = bool(self.dirty)

    def _owed(self) -> list:
        """The rows a resumed shard owes a fresh store (once)."""
        if not self.remirror:
            return []
        self.remirror = False
        return self._flush()

    def on_batch(self, groups: list) -> tuple[list, bool]:
        fold, states, key_of = self.fold, self.states, self.key_of
        out: list = self._owed()
        per_event = self.mirror is None
        touched = self.dirty
        shared = self.shared
        ordered = getattr(fold, "ordered_input", None)
        for group in groups:
            items = group[1] if ordered is None else _in_event_order(group[1], ordered)
            for x in items:
                if type(x) is Broadcast:
                    out.extend(fold.apply_shared(shared, x))  # type: ignore[attr-defined]
                    continue
                k = key_of(x)
                st = states.get(k)
                if st is None:
                    st = states[k] = fold.new()
                out.extend(fold.apply(st, x, shared) if self.uses_shared else fold.apply(st, x))
                if getattr(st, "erased", False):
                    del states[k]
                    touched.discard(k)
                    continue
                if per_event:
                    out.extend(fold.rows(st, k))
                else:
                    touched.add(k)
        self._schedule(groups, bool(touched))
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def _schedule(self, groups: list, touched: bool) -> None:
        """Plan the next mirror flush and idle sweep after a batch."""
        now = datetime.now(_UTC)
        if self.mirror is not None and touched and self.flush_at is None:
            # shards flush at staggered times: no once-a-second burst of every shard's rows
            if self.phase is None:
                self.phase = 0.5 + (zlib.crc32(groups[0][0].encode()) % 1000) / 1000
            self.flush_at = now + self.mirror * self.phase
        if self.idle_s is not None:
            mono = time.monotonic()
            for group in groups:
                for k in self._keys(group[1]):
                    self.seen[k] = mono
            if self.sweep_at is None:
                self.sweep_at = now + timedelta(seconds=self.idle_s / 4)

    def _keys(self, items: list) -> list[str]:
        """The entity keys of a group's items (for idle eviction)."""
        return [self.key_of(x) for x in items if type(x) is not Broadcast]

    def _flush(self) -> list:
        out: list = []
        for k in self.dirty:
            st = self.states.get(k)
            if st is not None:
                out.extend(self.fold.rows(st, k))
        self.dirty = set()
        return out

    def on_notify(self) -> tuple[list, bool]:
        now = datetime.now(_UTC)
        out: list = self._owed()
        if self.flush_at is not None and now >= self.flush_at:
            out = self._flush()
            self.flush_at = None
        if self.sweep_at is not None and now >= self.sweep_at:
            limit = time.monotonic() - (self.idle_s or 0)
            idle = [k for k, t in self.seen.items() if t < limit]
            out.extend(self._evict(idle))
            for k in idle:
                del self.seen[k]
            self.sweep_at = now + timedelta(seconds=(self.idle_s or 0) / 4) if self.seen \
                else None
        return ([out] if out else []), (StatefulBatchLogic.RETAIN if self._keep()
                                        else StatefulBatchLogic.DISCARD)

    def _evict(self, keys: list[str]) -> list:
        out: list = []
        for k in keys:
            st = self.states.pop(k, None)
            if st is not None and k in self.dirty:
                out.extend(self.fold.rows(st, k))
            self.dirty.discard(k)
        return out

    def _keep(self) -> bool:
        return bool(self.states) or self.uses_shared

    def on_eof(self) -> tuple[list, bool]:
        self.flush_at = None
        self.remirror = False
        out = self._flush()
        on_end = getattr(self.fold, "on_end", None)
        if on_end is not None:
            for st in self.states.values():
                out.extend(on_end(st))
        on_end_shared = getattr(self.fold, "on_end_shared", None)
        if on_end_shared is not None and self.uses_shared:
            out.extend(on_end_shared(self.shared))
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        times = [t for t in (self.flush_at, self.sweep_at) if t is not None]
        return min(times) if times else None

    step = "?"  # set by the step that builds it (for the snapshot metrics)

    def snapshot(self) -> bytes | None:
        if not self.snapshots:
            return None
        return _observed(self.step, pickle.dumps((self.states, self.dirty, self.shared),
                                                 protocol=pickle.HIGHEST_PROTOCOL))


class _NativeShardLogic(_ShardLogic):
    """The same step around a fold with a native shard (``fold.new_shard()``, see
    ``features.native``): a batch crosses into the shard once, not once per item."""

    def __init__(self, fold: Any, key_of: Callable[[Any], str], resume: bytes | None,
                 mirror_s: float, idle_s: float | None, snapshots: bool) -> None:
        super().__init__(fold, key_of, None, mirror_s, idle_s, snapshots)
        self.shard = fold.new_shard()
        if resume:
            self.shard.load(resume)

    def remirror_restored(self) -> None:
        self.shard.touch_all()  # NativeFold::touch of each entity (a no-op for some folds)
        self.remirror = self.shard.touched() > 0

    def on_batch(self, groups: list) -> tuple[list, bool]:
        per_event = self.mirror is None
        apply = self.shard.apply
        owed = self._owed()
        if len(groups) == 1:
            out = owed + apply(groups[0][1], per_event)
        else:
            out = owed
            for group in groups:
                out += apply(group[1], per_event)
        self._schedule(groups, self.shard.touched() > 0)
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def _keys(self, items: list) -> list[str]:
        # batches hold many entities
        return self.fold.native_module.entity_keys(items)  # type: ignore[attr-defined]

    def _flush(self) -> list:
        return self.shard.flush()

    def _evict(self, keys: list[str]) -> list:
        return self.shard.evict(keys)

    def _keep(self) -> bool:
        return len(self.shard) > 0

    def snapshot(self) -> bytes | None:
        return _observed(self.step, self.shard.dump()) if self.snapshots else None


def shard_groups(chunks: list, key_of: Callable[[Any], str], shards: int) -> list:
    """Group a batch of chunks into one ``(shard, items)`` message per shard, keeping item
    order."""
    groups: dict[int, list] = {}
    crc = zlib.crc32
    for chunk in chunks:
        for x in chunk:
            s = x.shard if type(x) is Broadcast else crc(key_of(x).encode()) % shards
            g = groups.get(s)
            if g is None:
                groups[s] = [x]
            else:
                g.append(x)
    return [(str(s), g) for s, g in groups.items()]


def sharded_fold_keyed(step_id: str, up: Stream, fold: Fold, key_of: Callable[[Any], str],
                       shards: int = 64, mirror_every_s: float = 1.0,
                       idle_evict_s: float | None = None, snapshots: bool = True,
                       remirror: bool = False) -> Stream:
    """``sharded_fold`` before its last step: a stream of ``(shard, chunk)`` pairs, for a
    consumer that reads them directly (``operators.chunks.split_by_type(keyed=True)``).
    ``remirror``: a resumed shard writes its restored entities' rows again (the store is
    in-process: it did not survive the restart)."""
    native = getattr(fold, "native_module", None)  # native shards key items by x[0]
    groups = (lambda batch: native.shard_groups(batch, shards)) if native is not None else (
        lambda batch: shard_groups(batch, key_of, shards))

    def group(batch: list) -> list:
        # keyed for Bytewax's stateful step, the group itself kept whole as the value
        return [(g[0], g) for g in groups(batch)]

    keyed = op.flat_map_batch(f"{step_id}_group", up, group)

    logic = _NativeShardLogic if hasattr(fold, "new_shard") else _ShardLogic

    def build(resume: bytes | None) -> _ShardLogic:
        built = logic(fold, key_of, resume, mirror_every_s, idle_evict_s, snapshots)
        built.step = step_id
        if remirror and resume:
            built.remirror_restored()
        return built

    return op.stateful_batch(f"{step_id}_fold", keyed, build)


def sharded_fold(step_id: str, up: Stream, fold: Fold, key_of: Callable[[Any], str],
                 shards: int = 64, mirror_every_s: float = 1.0,
                 idle_evict_s: float | None = None, snapshots: bool = True,
                 remirror: bool = False) -> Stream:
    """Apply ``fold`` per entity (``key_of(item)``) to a chunk stream; returns a chunk
    stream of everything the fold emits."""
    out = sharded_fold_keyed(step_id, up, fold, key_of, shards, mirror_every_s, idle_evict_s,
                             snapshots, remirror)
    return op.flat_map_batch(f"{step_id}_unkey", out, _merge_values)


def _merge_values(kvs: list) -> list:
    """(shard, chunk) pairs of one batch → one chunk."""
    if len(kvs) == 1:
        return [kvs[0][1]]
    return [[x for _, chunk in kvs for x in chunk]] if kvs else []
