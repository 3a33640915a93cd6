"""``python -m flows evaluate``: prequential next-item evaluation of Bespoke's feed against
simple baselines, on the same events, in event time.

The events of the input files are decoded (any format), ordered by event time (file order
breaks ties) and replayed one by one through the live flow's own parts: the feature folds
(item, category, popular list, user, co-visitation, session-kNN's index and trails; the item,
user and co-visitation ones in their native shards when built; every change mirrored to an
in-process store at once),
the candidate retrieval plan and its tools, the scorer, and the policy engine with its
feed selection (the ``replay`` pack by default: consent assumed, unknown stock and price
allowed). Before each behaviour event of a key that has an earlier one, the feed the key was
last served and each baseline's list (``agent.baselines``) are scored against the event's
item (``agent.prequential``); then the event is learned. A decision that no later event of
its key would score is not made (deciding has no other effect: the same numbers, faster).

Deterministic: the same input gives the same numbers. Nothing reads a wall clock (the tool
runtime runs on a frozen clock, so no call is ever timed out or rate limited; the store is
read directly, without the live flow's caches).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.baselines import Recommender, all_baselines
from agent.feed import choose_feed, retrieve
from agent.policy_gate import RANKER_FACTS, PolicyGate
from agent.prequential import Scoreboard
from agent.ranker import LearnedRanker
from agent.store_tools import store_tools
from agent.tools import ToolRuntime
from connectors.memory_store import MemoryStore
from connectors.policy_packs import read_pack_files
from features.category_features import CategoryFold, CategoryInput, PopularFold, popular_inputs
from features.covisitation import CovisFold
from features.events import LateEvent
from features.interactions import BEHAVIOUR, AffinityHint, UserEvent, item_inputs, user_inputs
from features.item_features import ItemFold
from features.native import (
    HintBatch,
    PairBatch,
    native_covis_fold,
    native_item_fold,
    native_user_fold,
)
from features.native import available as native_available
from features.ranking import rows_and_scores
from features.score import MODEL_VERSION, rank
from features.session_index import ItemKeysFold, TrailFold, touches, trail_inputs
from features.store import StoreOp, StorePurge, StoreWrite
from features.user_features import UserFeatures, UserFold
from features.validate import RawRecord, validate_record
from flows.settings import Settings
from policies.evaluate import UserContext

Event = tuple[int, int, list[tuple], list[tuple]]  # (ts, order, item inputs, user inputs)


def read_events(paths: list[str], fmt: str) -> tuple[list[Event], int]:
    """Every valid event of the files, in event time; and the count of dead letters."""
    events: list[Event] = []
    dead = 0
    seq = 0
    for path in paths:
        with open(path, "rb") as fh:
            for off, line in enumerate(fh):
                evs, bad = validate_record(RawRecord(path, 0, off, line.rstrip(b"\r\n"), 0),
                                           fmt)
                dead += len(bad)
                for ev in evs:
                    events.append((ev.ts, seq, item_inputs(ev), user_inputs(ev)))
                    seq += 1
    events.sort(key=lambda e: (e[0], e[1]))
    return events, dead


class _Rows:
    """The store's rows for the agent, the same object until the row changes (so the
    policy gate's facts of a row are parsed once): the replay invalidates what it writes."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.rows: dict[str, dict[str, dict | None]] = {}  # entity -> key -> row

    def read_many(self, entity: str, keys: list[str]) -> list:
        rows = self.rows.get(entity)
        if rows is None:
            rows = self.rows[entity] = {}
        try:  # most reads find every row cached
            return [rows[k] for k in keys]
        except KeyError:
            pass
        missing = [k for k in keys if k not in rows]
        for k, r in zip(missing, self.store.read_many(entity, missing), strict=True):
            rows[k] = r
        return [rows[k] for k in keys]

    def apply(self, ops: list[StoreOp]) -> None:
        self.store.apply(ops)
        for o in ops:
            rows = self.rows.get(o.entity)
            if rows is None:
                continue
            if type(o) is StorePurge and o.prefix:
                for k in [k for k in rows if k.startswith(o.key)]:
                    del rows[k]
            else:
                rows.pop(o.key, None)


@dataclass
class Replay:
    """The live flow's folds, tools, scorer and policy, driven one event at a time."""

    settings: Settings
    policy: str = "replay"
    exclude_seen: bool = False
    k: int = 20
    ranker: LearnedRanker | None = None
    store: MemoryStore = field(default_factory=MemoryStore)
    late: int = 0

    def __post_init__(self) -> None:
        s = self.settings
        lateness = int(s.allowed_lateness_s * 1000)
        self.item, self.cat = ItemFold(lateness), CategoryFold()
        self.user, self.covis = UserFold(lateness, None, True), CovisFold()
        # the item, user and co-visitation folds in their native shards when built (the
        # same outputs, field for field: tests/features/test_native_folds.py)
        self.shards: dict[str, Any] = {}
        if s.native_kernels and native_available():
            native: dict[str, Any] = {"item": native_item_fold(lateness),
                                      "user": native_user_fold(lateness, None, True),
                                      "covis": native_covis_fold()}
            self.shards = {name: fold.new_shard() for name, fold in native.items()}
        self.keys, self.trail, self.popular = ItemKeysFold(), TrailFold(), PopularFold()
        self.states: dict[str, dict] = {"item": {}, "cat": {}, "user": {}, "covis": {},
                                        "keys": {}, "trail": {}, "popular": {}}
        files = read_pack_files(s.policy_dir)
        self.rows = _Rows(self.store)
        self.gate = PolicyGate(files, self.policy, lambda: self.rows,
                               native=s.native_kernels)
        self.engine = self.gate.ensure(self.gate.new_engine())
        # a frozen clock: no call is timed out or rate limited (same input, same output)
        self.runtime = ToolRuntime(store_tools(self.rows, s.native_kernels), clock=lambda: 0.0)
        self.served: dict[str, list[str]] = {}
        self.pending: dict[str, tuple[list[tuple[float, ...]], list[str]]] = {}

    # ------------------------------------------------------------------ folds
    def _fold(self, fold, name: str, key: str, x) -> list:
        shard = self.shards.get(name)
        if shard is not None:
            return shard.apply([x], True)
        states = self.states[name]
        st = states.get(key)
        if st is None:
            st = states[key] = fold.new()
        out = fold.apply(st, x)
        if getattr(st, "erased", False):
            del states[key]
            return out
        return out + fold.rows(st, key)

    def _route(self, outs: list, decisions: list[UserFeatures]) -> None:
        store: list[StoreOp] = []
        for o in outs:
            t = type(o)
            if t is StoreWrite or t is StorePurge:
                store.append(o)
            elif t is AffinityHint:
                self._route(self._fold(self.user, "user", o.user_id, o), decisions)
            elif t is CategoryInput:
                store += self._fold(self.cat, "cat", o.category, o)
            elif t is UserFeatures:
                decisions.append(o)
            elif t is tuple:  # a co-visitation pair
                store += self._fold(self.covis, "covis", o[0], o)
            elif t is PairBatch:  # the native user shard's pairs
                store += self.shards["covis"].apply([o], True)
            elif t is HintBatch:  # the native item shard's hints
                self._route(self.shards["user"].apply([o], True), decisions)
            elif t is LateEvent:
                self.late += 1
        if store:
            self.rows.apply(store)

    def learn(self, items: list[tuple], users: list[tuple]) -> list[UserFeatures]:
        decisions: list[UserFeatures] = []
        for x in items:
            self._route(self._fold(self.item, "item", x[0], x), decisions)
            popular = popular_inputs(x)
            if popular:
                self.rows.apply([o for p in popular
                                 for o in self._fold(self.popular, "popular", p.key, p)])
        for x in users:
            self._route(self._fold(self.user, "user", x[0], x), decisions)
        if decisions and self.settings.session_knn:  # session-kNN's index and trails
            store: list[StoreOp] = []
            for t in touches(decisions):
                store += self._fold(self.keys, "keys", t[0], t)
            for u in trail_inputs(decisions):
                store += self._fold(self.trail, "trail", u[0], u)
            if store:
                self.rows.apply(store)
        return decisions

    # ------------------------------------------------------------------ decisions
    def outcome(self, key: str, sku: str) -> None:
        """The key's next item, for the ranker: learned against the candidates of the
        decision served before it."""
        pending = self.pending.pop(key, None)
        if self.ranker is not None and pending is not None:
            self.ranker.learn(pending[0], pending[1], sku)

    def decide(self, f: UserFeatures, seen: set[str] | None) -> None:
        """The feed the live flow would send after ``f``'s event (kept when unchanged or
        when every candidate is denied, as the live flow does)."""
        if f.erased:
            self.served.pop(f.user_id, None)
            return
        bought = frozenset(f.purchased)
        if seen is not None:  # items the key interacted with are not recommended again
            f = f._replace(purchased=tuple(seen))
        limit = max(self.settings.candidates_scored, self.k)
        ((_, items, found),) = retrieve([f], self.runtime, limit,
                                        self.settings.native_kernels, lists=bool(self.ranker),
                                        exclude_seen=seen is not None,
                                        knn=self.settings.session_knn)
        ranked = rank(items, limit)
        facts = None
        if self.ranker is not None:
            # the item facts read once, for the ranker and the policy (as the live flow)
            skus = [s for s, _ in ranked]
            facts = self.gate.item_facts(skus)
            vec, b = self.ranker.weights()
            feats, sc = rows_and_scores(ranked, dict(f.interests), found.lists, f.recent,
                                        f.cart, [x[RANKER_FACTS] for x in facts], vec, b,
                                        self.settings.native_kernels, self.ranker.deep())
            self.pending[f.user_id] = (feats, skus)
            ranked = self.ranker.reorder(ranked, sc or [])
            of = dict(zip(skus, facts, strict=True))
            facts = [of[s] for s, _ in ranked]
        user = UserContext(f.user_id, frozenset(f.consent) if f.consent is not None else None,
                           sent={"push": ()}, purchased=bought)
        skus, chosen, _ = choose_feed(self.gate, self.engine, user, f.ts, ranked, self.k,
                                      facts)
        if chosen:
            self.served[f.user_id] = [skus[i] for i in chosen]


def _target(x: tuple) -> str | None:
    return x.lines[0][0] if type(x) is UserEvent and x.kind in BEHAVIOUR and x.lines else None


def evaluate(paths: list[str], fmt: str, ks: tuple[int, ...] = (10, 20),
             settings: Settings | None = None, policy: str = "replay",
             exclude_seen: bool = False, baselines: list[Recommender] | None = None,
             progress: bool = False, learned: bool = True, periods: int = 1,
             decide_all: bool = False) -> dict:
    """Scores of Bespoke's feed and of the baselines (see the module docstring); with
    ``periods`` > 1 also per period of event time (equal spans from the first event to the
    last: before and after a shift, say), under ``"periods"``. ``decide_all``: also make
    the decisions no later event scores (the same numbers, slower)."""
    s = settings or Settings(_env_file=None)
    t0 = time.perf_counter()
    events, dead = read_events(paths, fmt)
    read_s = time.perf_counter() - t0
    kmax = max(ks)
    replay = Replay(s, policy, exclude_seen, kmax, LearnedRanker() if learned else None)
    recs = all_baselines() if baselines is None else baselines
    board = Scoreboard(ks)
    lo = events[0][0] if events else 0
    span = (events[-1][0] - lo) // max(1, periods) + 1 if events else 1
    boards = [Scoreboard(ks) for _ in range(periods)] if periods > 1 else []
    history: dict[str, list[str]] = {}
    seen: dict[str, set[str]] = {}
    last: dict[str, tuple[str, int]] = {}
    items: set[str] = set()
    # a feed is only ever scored (and learned from) at its key's next behaviour event: a
    # decision for a key with none later is not made (nothing it would do is ever read)
    last_target = {x[0]: i for i, e in enumerate(events) for x in e[3]
                   if _target(x) is not None}
    t1 = time.perf_counter()
    for i, (ts, _, item_in, user_in) in enumerate(_progress(events, progress)):
        for x in item_in:
            items.add(x[0])
        for x in user_in:
            sku = _target(x)
            if sku is None:
                continue
            key = x[0]
            hist = history.get(key)
            # a record decoded as two events of one interaction (a MovieLens rating: a view,
            # and a click when liked) is one target
            if hist and last.get(key) != (sku, x[2]):
                known = seen[key]
                on = (board, boards[min(len(boards) - 1, (ts - lo) // span)]) if boards \
                    else (board,)
                skip = known if exclude_seen else None
                served = replay.served.get(key, [])
                replay.outcome(key, sku)
                lists = []
                for r in recs:
                    got = r.recommend(key, hist, kmax + (len(known) if skip else 0))
                    lists.append((r.name, [i for i in got if not skip or i not in skip][:kmax]))
                for b in on:
                    b.target(sku in known)
                    b.add("bespoke", served, sku)
                    for name, got in lists:
                        b.add(name, got, sku)
        for f in replay.learn(item_in, user_in):
            if decide_all or f.erased or last_target.get(f.user_id, -1) > i:
                replay.decide(f, seen.get(f.user_id) if exclude_seen else None)
        for x in user_in:
            sku = _target(x)
            if sku is None:
                continue
            key = x[0]
            history.setdefault(key, []).append(sku)
            last[key] = (sku, x[2])
            if len(history[key]) > 200:
                del history[key][:100]
            seen.setdefault(key, set()).add(sku)
            for r in recs:
                r.learn(key, sku, x[2])
    secs = time.perf_counter() - t1
    return {"input": [str(Path(p)) for p in paths], "format": fmt, "events": len(events),
            "dead_letters": dead, "late_events": replay.late, "keys": len(history),
            "items": len(items), "targets": board.targets, "seen_share": board.seen_share,
            "policy": replay.gate.active,
            "model_version": replay.ranker.version if replay.ranker else MODEL_VERSION,
            "exclude_seen": exclude_seen, "session_knn": s.session_knn,
            "events_per_s": round(len(events) / secs) if secs else None,
            "read_s": round(read_s, 2), "replay_s": round(secs, 2),
            "results": board.result(len(items)),
            **({"periods": [{"from_ts": lo + i * span, "to_ts": lo + (i + 1) * span - 1,
                             "targets": b.targets, "results": b.result(len(items))}
                            for i, b in enumerate(boards)]} if boards else {})}


def _progress(events: list[Event], on: bool) -> Iterator[Event]:
    n, t0 = len(events), time.perf_counter()
    for i, e in enumerate(events):
        if on and i % 5000 == 0 and i:
            rate = i / (time.perf_counter() - t0)
            bar = "#" * int(30 * i / n)
            print(f"\r[{bar:<30}] {i:,}/{n:,} events, {rate:,.0f}/s", end="", file=sys.stderr,
                  flush=True)
        yield e
    if on:
        print(f"\r[{'#' * 30}] {n:,}/{n:,} events{' ' * 20}", file=sys.stderr, flush=True)


def table(res: dict) -> str:
    """The results as a text table, best HR first."""
    ks = sorted({int(k.split("@")[1]) for r in res["results"].values() for k in r
                 if k.startswith("hr@")})
    cols = [f"{m}@{k}" for k in ks for m in ("hr", "mrr")] + [f"coverage@{ks[0]}"]
    rows = sorted(res["results"].items(), key=lambda kv: -kv[1][cols[0]])
    lines = [f"{'recommender':<20}" + "".join(f"{c:>13}" for c in cols)]
    for name, r in rows:
        lines.append(f"{name:<20}" + "".join(f"{r[c]:>13.4f}" for c in cols))
    for i, p in enumerate(res.get("periods", ())):
        best = sorted(p["results"].items(), key=lambda kv: -kv[1][cols[0]])
        lines.append(f"period {i + 1} ({p['targets']:,} targets): " + ", ".join(
            f"{name} {r[cols[0]]:.4f}/{r[cols[1]]:.4f}" for name, r in best))
    lines.append(f"{res['targets']:,} targets over {res['keys']:,} keys and {res['items']:,} "
                 f"items; {res['seen_share']:.1%} of targets seen before by their key; "
                 f"policy {res['policy']}; session-kNN "
                 f"{'on' if res.get('session_knn') else 'off'}; {res['events_per_s']:,} events/s")
    return "\n".join(lines)


def write(res: dict, out: str) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
