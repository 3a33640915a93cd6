"""Event-time join of decisions with item facts: the facts step and the hold step.

The **facts step** applies the item and category writes of the feature folds to the
process's versioned fact table (``features.facts.FactTable``), sharded like the folds that
make them (no exchange between workers), each shard snapshotting its keys' versions.

The **hold step** keeps each decision trigger until every input partition's clock
(``features.facts.ClockTick``, newest event time read) has passed the trigger's cut plus
the decision lateness, counting only what Bytewax has closed: a hold shard takes the clocks
it has received as safe when its epoch closes (``snapshot``), and the facts step's output
is merged into its input, so by then every fact of those epochs is in the table. The
decision then reads facts as of its cut (``features.facts.as_of``): what it sees depends on
the input alone. Partitions that have ended do not hold decisions back; one its source
found silent (``BESPOKE_PARTITION_IDLE_S`` of wall clock, said in the stream itself) stops
holding them back until its next record: what stream processors call an idle source, the
one place wall-clock time enters.

Triggers leave in arrival order per shard (a user's order is kept). At the end of a finite
input everything held is let through.
"""

from __future__ import annotations

import heapq
import pickle
import threading
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

from features.facts import FACT_ENTITIES, ClockTick, FactTable, as_of, cut
from features.store import StorePurge, StoreWrite

HOLD_SHARDS = 8


class HoldConfig(NamedTuple):
    lateness_ms: int  # how far behind its partition's clock an input may still come
    tick_ms: int  # decisions in one tick read the facts as of its end
    parts: tuple[str, ...] = ()  # the input partitions expected ("source:partition")
    poll_s: float = 0.01  # how often a shard holding triggers looks again
    retention_ms: int = 60_000  # versions kept this long behind the released clock
    shards: int = HOLD_SHARDS  # hold shards
    # a decision at cut c ranks with the models learned from every outcome known before
    # c - model_delay_ms (None: no learned model to wait for)
    model_delay_ms: int | None = None


def _cut_seq(e: tuple[int, int, Any]) -> tuple[int, int]:
    return e[0], e[1]


class HoldStats:
    """Counts of the process's hold steps (read by metrics and the run's summary)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.late_inputs = 0  # item inputs later than the lateness behind their clock
        self.late_triggers = 0  # triggers older than the kept fact history
        self.held = 0  # triggers held now
        self.released = 0

    def add(self, **counts: int) -> None:
        with self.lock:
            for k, n in counts.items():
                setattr(self, k, getattr(self, k) + n)


STATS = HoldStats()
_SAFE: dict[int, dict[int, int]] = {}  # per table, each hold shard's safe clock
_SAFE_LOCK = threading.Lock()
_ENDED: dict[int, set[int]] = {}  # per table, the hold shards that saw every input end


class AsOfFold:
    """A sharded fold (``operators.sharded_fold``) whose items read facts as of their
    tick: ``time_of(item)``; a broadcast control as of its own time. Each item was pinned
    in ``table`` at its tick (by the hold step, or by the fold before, for the outputs of
    the types in ``passes``): unpinned once applied, the outputs of those types (field
    ``ts``) pinned at their tick for the next fold. With ``publish``,
    the fold's fact writes (a learner's model versions) land in ``table`` before the item
    is unpinned: a decision waiting for this fold's pins reads them."""

    def __init__(self, fold: Any, time_of: Any, tick_ms: int, table: FactTable,
                 passes: dict[type, Any] | None = None, pool: Any = None,
                 publish: bool = False) -> None:
        """``passes``: per type of output, the pool it is pinned in (a function of the
        output); ``pool``: the pool an item was pinned in (a function of the item; default
        "")."""
        self._fold, self._time_of, self._tick = fold, time_of, tick_ms
        self._table, self._passes, self._pool = table, passes or {}, pool
        self._publish = publish

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fold, name)

    def apply(self, state: Any, item: Any, *shared: Any) -> list:
        at = cut(self._time_of(item), self._tick)
        with as_of(at):
            out: list = self._fold.apply(state, item, *shared)
        passes = self._passes
        if passes:
            for x in out:
                pool_of = passes.get(type(x))
                if pool_of is not None:  # at its own tick (an approved review's: earlier)
                    self._table.pin(cut(x.ts, self._tick), pool_of(x))
        if self._publish:
            self._table.apply([x for x in out if type(x) is StoreWrite])
        self._table.unpin(at, self._pool(item) if self._pool is not None else "")
        return out

    def apply_shared(self, shared: Any, b: Any) -> list:
        ts = getattr(b.payload, "ts", None)
        with as_of(cut(ts, self._tick) if isinstance(ts, int) else None):
            return self._fold.apply_shared(shared, b)  # type: ignore[no-any-return]


def _fact_shard(op_: Any, shards: int) -> str:
    return str(zlib.crc32(op_.key.encode()) % shards)


class _FactsLogic(StatefulBatchLogic):
    def __init__(self, table: FactTable, resume: bytes | None, snapshots: bool,
                 apply: bool = True) -> None:
        self.table, self.snapshots, self.apply = table, snapshots, apply
        self.keys: set[tuple[str, str]] = set()
        if resume:
            rows = pickle.loads(resume)
            table.load(rows)
            self.keys = {(e, k) for e, k, _ in rows}

    def on_batch(self, groups: list) -> tuple[list, bool]:
        for ops in groups:
            if self.apply:
                self.table.apply(ops)
            for o in ops:
                if type(o) is StorePurge:
                    self.keys = {k for k in self.keys if not (k[0] == o.entity and (
                        k[1] == o.key or (o.prefix and k[1].startswith(o.key))))}
                else:
                    self.keys.add((o.entity, o.key))
        return [], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        if not self.snapshots:
            return None
        return pickle.dumps(self.table.dump(self.keys), protocol=pickle.HIGHEST_PROTOCOL)


def facts_step(step_id: str, store_ops: Stream[list], table: FactTable, shards: int,
               snapshots: bool, apply: bool = True) -> Stream:
    """Apply the fact writes among ``store_ops`` chunks to ``table``; the returned stream
    carries nothing: merged into the hold step's input, it makes the hold wait for it.
    ``apply=False``: the writes are in the table already (a learner's, ``AsOfFold``); the
    step only keeps their keys' versions in its snapshots."""
    def group(chunks: list) -> list:
        groups: dict[str, list] = {}
        for c in chunks:
            for o in c:
                if o.entity in FACT_ENTITIES:
                    groups.setdefault(_fact_shard(o, shards), []).append(o)
        return list(groups.items())

    keyed = op.flat_map_batch(f"{step_id}_group", store_ops, group)
    return op.stateful_batch(f"{step_id}_apply", keyed,
                             lambda resume: _FactsLogic(table, resume, snapshots, apply))


class _HoldLogic(StatefulBatchLogic):
    def __init__(self, cfg: HoldConfig, table: FactTable, resume: bytes | None,
                 snapshots: bool) -> None:
        self.cfg, self.table, self.snapshots = cfg, table, snapshots
        self.queue: list[tuple[int, int, Any]] = []  # a heap of (cut, arrival, trigger)
        self.seq = 0
        self.clocks: dict[str, int] = {}
        self.ended: set[str] = set()
        self.idle: set[str] = set()  # silent, by their source's word
        self.safe: int | None = None  # the clock of the closed epochs
        # a resumed shard lets nothing through until one of its epochs has closed: the
        # facts shards upstream have loaded their snapshots by then
        self.fresh = resume is not None
        if resume:
            self.queue, self.seq, self.clocks, self.ended, self.idle, self.safe = \
                pickle.loads(resume)
            for c, _, _ in self.queue:
                table.pin(c)
            STATS.add(held=len(self.queue))

    def on_batch(self, values: list) -> tuple[list, bool]:
        for kind, payload in values:
            if kind == "t":
                horizon = self.table.horizon
                tick = self.cfg.tick_ms
                for f in payload:
                    c = cut(f.ts, tick)
                    if horizon is not None and c < horizon:
                        STATS.add(late_triggers=1)
                    heapq.heappush(self.queue, (c, self.seq, f))
                    self.seq += 1
                    self.table.pin(c)  # until the decision step is done with it
                STATS.add(held=len(payload))
            else:
                for t in payload:
                    if t.idle:
                        self.idle.add(t.part)
                    else:
                        self.idle.discard(t.part)
                    if t.newest is not None and t.newest > self.clocks.get(t.part, -1 << 62):
                        self.clocks[t.part] = t.newest
                    if t.end:
                        self.ended.add(t.part)
        return self._release(), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list, bool]:
        return self._release(), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list, bool]:
        out = [f for _, _, f in sorted(self.queue, key=_cut_seq)]
        STATS.add(held=-len(out), released=len(out))
        self.queue.clear()
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if not self.queue:
            return None
        return datetime.now(UTC) + timedelta(seconds=self.cfg.poll_s)

    def snapshot(self) -> bytes | None:
        # called when an epoch closes here: every tick and fact of it has arrived
        self.fresh = False
        self._advance()
        if not self.snapshots:
            return None
        return pickle.dumps((self.queue, self.seq, self.clocks, self.ended, self.idle,
                             self.safe), protocol=pickle.HIGHEST_PROTOCOL)

    def _advance(self) -> None:
        if self.cfg.parts and self.ended.issuperset(self.cfg.parts):
            with _SAFE_LOCK:  # every trigger has reached this shard (a closed epoch)
                _ENDED.setdefault(id(self.table), set()).add(id(self))
        clock = self._clock()
        if clock is not None and (self.safe is None or clock > self.safe):
            self.safe = clock
            # no trigger that arrives from now on is older than this but a late one (the
            # table keeps what the held and released ones read: their pins)
            with _SAFE_LOCK:
                shards = _SAFE.setdefault(id(self.table), {})
                shards[id(self)] = clock
                least = min(shards.values()) if len(shards) >= self.cfg.shards else None
            if least is not None:  # every hold shard has closed an epoch
                floor = least - self.cfg.lateness_ms
                self.table.advance(floor, floor - self.cfg.retention_ms)

    def _clock(self) -> int | None:
        """The least clock of the partitions that may still send facts: None while an
        expected partition has not been heard from (and has not been found silent)."""
        quiet = self.ended | self.idle
        live = [c for p, c in self.clocks.items() if p not in quiet]
        for p in self.cfg.parts:
            if p not in self.clocks and p not in quiet:
                return None
        if live:
            return min(live)
        if self.clocks:  # every partition ended or silent: all read so far may go
            return max(self.clocks.values()) + self.cfg.lateness_ms + self.cfg.tick_ms
        return None

    def _release(self) -> list:
        if self.fresh or self.safe is None or not self.queue:
            return []
        limit = self.safe - self.cfg.lateness_ms
        delay = self.cfg.model_delay_ms
        if delay is not None:  # the learners must have learned all known before c - delay
            t = self.table
            floor, oldest = t.floor, t.oldest_pin_any()
            if floor is None:
                return []
            limit = min(limit, floor + delay)
            if oldest is not None:
                limit = min(limit, oldest + delay - 1)
        q = self.queue
        out = []
        while q and q[0][0] <= limit:
            out.append(heapq.heappop(q)[2])
        if out:
            STATS.add(held=-len(out), released=len(out))
        return [out] if out else []


def drained(table: FactTable, shards: int) -> bool:
    """Every input has ended, every hold shard has seen it in a closed epoch, and nothing
    is held or pinned: every decision made, offer allocated and outcome learned (a finite
    source lingers until then: ``connectors.linger``)."""
    with _SAFE_LOCK:
        ended = len(_ENDED.get(id(table), ()))
    return ended >= shards and table.oldest_pin_any() is None


def hold_progress(table: FactTable) -> tuple[int, int | None]:
    """What changes while the held decisions move on (``connectors.linger``)."""
    return STATS.released, table.oldest_pin_any()


def decision_hold(step_id: str, triggers: Stream[list], clock: Stream[list[ClockTick]],
                  facts: Stream, table: FactTable, cfg: HoldConfig,
                  snapshots: bool) -> Stream[list]:
    """``triggers``: chunks of ``UserFeatures``; ``clock``: chunks of ``ClockTick``s
    (``operators.validate``); ``facts``: the facts step's output. Returns the triggers'
    chunks, each let through once the facts before its cut are all in ``table``."""
    crc = zlib.crc32
    shards = cfg.shards

    def key_triggers(chunks: list) -> list:
        groups: dict[str, list] = {}
        for c in chunks:
            for f in c:
                groups.setdefault(str(crc(f.user_id.encode()) % shards), []).append(f)
        return [(k, ("t", g)) for k, g in groups.items()]

    def key_ticks(chunks: list) -> list:
        ticks = [t for c in chunks for t in c]
        return [(str(s), ("c", ticks)) for s in range(shards)] if ticks else []

    keyed = op.merge(f"{step_id}_in",
                     op.flat_map_batch(f"{step_id}_key", triggers, key_triggers),
                     op.flat_map_batch(f"{step_id}_ticks", clock, key_ticks),
                     facts)
    held = op.stateful_batch(
        f"{step_id}_wait", keyed,
        lambda resume: _HoldLogic(cfg, table, resume, snapshots))
    return op.flat_map_batch(f"{step_id}_unkey", held, lambda kvs: [v for _, v in kvs])


def alloc_pool(key: str, shards: int) -> str:
    """The pin pool of the allocation shard ``key`` goes to (``ordered_release``)."""
    return f"alloc:{zlib.crc32(key.encode()) % shards}"


class _OrderedLogic(StatefulBatchLogic):
    """One shard's items in (tick, order key) order: an item at tick ``c`` leaves once
    every trigger at or before ``c`` has been pinned (the table's floor) and decided (no
    trigger pin left at or before it), and every item of this shard pinned at or before
    ``c`` has arrived here."""

    def __init__(self, table: FactTable, tick_ms: int, pool_of: Any,
                 order: Any, resume: bytes | None, snapshots: bool, poll_s: float) -> None:
        self.table, self.tick, self.pool_of = table, tick_ms, pool_of
        self.order, self.snapshots, self.poll_s = order, snapshots, poll_s
        self.items: list[tuple[int, Any, Any]] = pickle.loads(resume) if resume else []
        for c, _, x in self.items:  # pinned again: the pins did not survive the restart
            table.pin(c, pool_of(x))

    def on_batch(self, values: list) -> tuple[list, bool]:
        for batch in values:
            for x in batch:
                self.items.append((cut(x.ts, self.tick), self.order(x), x))
        self.items.sort(key=lambda e: (e[0], e[1]))
        return self._release(), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list, bool]:
        return self._release(), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list, bool]:
        out = [x for _, _, x in self.items]
        self.items = []
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return datetime.now(UTC) + timedelta(seconds=self.poll_s) if self.items else None

    def snapshot(self) -> bytes | None:
        return pickle.dumps(self.items, protocol=pickle.HIGHEST_PROTOCOL) if self.snapshots \
            else None

    def _release(self) -> list:
        if not self.items:
            return []
        t = self.table
        floor, pending = t.floor, t.oldest_pin()
        pool = self.pool_of(self.items[0][2])
        n = 0
        while n < len(self.items):
            c = self.items[n][0]
            if floor is None or c > floor or (pending is not None and pending <= c):
                break
            here = sum(1 for e in self.items if e[0] <= c)
            if t.pinned(pool, c) != here:  # some of this tick's are on their way
                break
            while n < len(self.items) and self.items[n][0] == c:
                n += 1
        out = [x for _, _, x in self.items[:n]]
        del self.items[:n]
        return [out] if out else []


def ordered_release(step_id: str, up: Stream[list], table: FactTable, tick_ms: int,
                    shards: int, key_of: Any, order: Any, snapshots: bool,
                    poll_s: float = 0.01, pool_of: Any = None) -> Stream[list]:
    """Chunks of items (fields ``ts``), pinned in ``table`` at their tick under
    ``pool_of(item)`` (default: ``alloc_pool`` of their key) by the step that made them →
    the same items, per shard of ``key_of`` in (tick, ``order``) order, each once nothing
    before it can still come (``_OrderedLogic``): a keyed fold after it (same key, same
    shards) sees them in an order the input alone decides. One pool per shard."""
    crc = zlib.crc32
    if pool_of is None:
        def pool_of(x: Any) -> str:
            return alloc_pool(key_of(x), shards)

    def group(chunks: list) -> list:
        groups: dict[str, list] = {}
        for c in chunks:
            for x in c:
                groups.setdefault(str(crc(key_of(x).encode()) % shards), []).append(x)
        return list(groups.items())

    keyed = op.flat_map_batch(f"{step_id}_key", up, group)
    out = op.stateful_batch(f"{step_id}_order", keyed, lambda resume: _OrderedLogic(
        table, tick_ms, pool_of, order, resume, snapshots, poll_s))
    return op.flat_map_batch(f"{step_id}_unkey", out, lambda kvs: [v for _, v in kvs])
