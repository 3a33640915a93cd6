"""Policy step support: the per-shard policy engine and the candidates it judges.

Every decision shard keeps a ``PolicyEngine`` in its shared state; control events are
broadcast to all shards, so each applies the same changes in the same order, and only
shard 0 emits the ``policy_change`` events (one log line per change, not one per shard).
Candidates are built from the online store's item rows (catalog, stock, price), read
through the row reader the flow gives (``connectors.cached_store.CachedRows`` over the
store: one round trip for all missing rows, cached per process); the agent's tools read
item and category rows through the same reader, which the candidate step warms per chunk
of decisions (``prefetch``, ``prefetch_facts``): one round trip per chunk rather than
several per decision when the store is Redis. The facts derived from a row are kept while
the reader returns the same row object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from agent import store_tools as col
from agent.ranker import item_facts
from agent.store_tools import store_tools
from agent.tools import Tool, ToolRuntime
from features.category_features import ALL
from features.channels import POLICY_CHANGES
from features.events import Control, PolicyChange, outgoing
from features.store import RowReader, read_groups
from policies.evaluate import Candidates, CompiledPack, top_category
from policies.lifecycle import PolicyEngine
from policies.pack import PackError, load_pack

RANKER_FACTS = 8  # where an item's facts hold the learned ranker's (popularity, trend, conv.)
POLICY_ACTIONS = ("switch_policy", "shadow_policy", "canary_policy", "rollback_policy")


def _version_key(ref: str) -> tuple[tuple[int, str], ...]:
    """'pack@2026.11.2' ordered by its version's parts, numbers as numbers."""
    return tuple((int(p), "") if p.isdigit() else (-1, p)
                 for p in ref.split("@", 1)[-1].split("."))


def _price(v: Any) -> float | None:
    """A known price, or None (unknown is unknown: never 0)."""
    return None if v is None or v == "" else float(v)


class PolicyGate:
    """Builds engines from pack files and candidates from the store (one per process)."""

    def __init__(self, pack_files: list[tuple[str, str]], active: str | None,
                 rows_factory: Callable[[], RowReader], native: bool = True,
                 facts_factory: Callable[[RowReader], RowReader] | None = None,
                 extra_tools: Callable[[RowReader], list[Tool]] | None = None) -> None:
        """``extra_tools``: tools beside the store's (the enterprise adapters), built with
        the runtime in the worker that needs them."""
        packs = {}
        for text, source in pack_files:
            try:
                p = load_pack(text, source)
            except PackError:
                continue  # refused packs are logged when a control event asks for them
            packs[p.ref] = CompiledPack(p)
        if not packs:
            raise ValueError("no valid policy pack found")
        self.packs = packs
        self.files = pack_files
        if active and "@" not in active:  # a pack's name: its newest version
            named = [ref for ref in packs if ref.split("@")[0] == active]
            if not named:
                raise ValueError(f"no policy pack named {active!r} among {sorted(packs)}")
            active = max(named, key=_version_key)
        self.active = active or sorted(packs)[0]
        if self.active not in packs:
            raise ValueError(f"active pack {self.active} is not among {sorted(packs)}")
        self._rows_factory = rows_factory
        self._rows: RowReader | None = None
        # a cache of the facts derived from the rows (``facts_reader``), when the flow gives
        # one: the hot path then skips the per-row memo below
        self._facts_factory = facts_factory
        self._facts_reader: RowReader | None = None
        self._facts: dict[str, tuple[object, tuple[Any, ...]]] = {}  # sku -> (its row, facts of it)
        self._native = native
        self._lock = threading.Lock()
        self._runtime: ToolRuntime | None = None
        self._extra_tools = extra_tools

    def new_engine(self) -> PolicyEngine:
        return PolicyEngine.from_compiled(self.packs, self.active)

    def ensure(self, eng: PolicyEngine) -> PolicyEngine:
        if not eng.packs:
            eng.attach(self.packs)
        return eng

    def control(self, eng: PolicyEngine, ctl: Control, emit: bool) -> list[Any]:
        """Apply a control event; packs named but not loaded are looked up in the files."""
        self.ensure(eng)
        before = len(eng.changes)
        if ctl.version and ctl.action != "rollback_policy":
            wanted = ctl.version if "@" in ctl.version else \
                f"{eng.active.split('@')[0]}@{ctl.version}"
            if wanted not in eng.packs:
                for text, source in self.files:
                    if f'version = "{wanted.split("@")[1]}"' in text:
                        eng.register(text, source, ctl.ts, ctl.issued_by)
        eng.control(ctl.action, ctl.version, ctl.percent, ctl.ts, ctl.issued_by)
        if not emit:
            return []
        return [outgoing(POLICY_CHANGES.name, ch.pack or "none", PolicyChange(
            id=f"policy:{ctl.event_id}:{ch.seq}", ts=ch.ts, seq=ch.seq, action=ch.action,
            pack=ch.pack, detail=ch.detail[:2048], issued_by=ch.issued_by, ok=ch.ok,
            trigger_event_id=ctl.event_id)) for ch in eng.changes[before:]]

    # -------------------------------------------------------------- candidates
    @staticmethod
    def _parse_facts(r: dict[str, Any]) -> tuple[Any, ...]:
        """(category, brand, price, available, min_age, regions, configurable, top-level
        category, the ranker's facts) of an item's store row."""
        cat = r.get(col.CATEGORY, "")
        return (cat, r.get(col.BRAND, ""),
                _price(r.get(col.PRICE, r.get(col.CATALOG_PRICE))),
                r.get(col.AVAILABLE), int(r.get(col.MIN_AGE, 0)),
                tuple(x for x in str(r.get(col.REGIONS, "")).split(",") if x),
                bool(r.get(col.OPTIONS)), top_category(cat), item_facts(r))

    def _reader(self) -> RowReader:
        """The store's rows, built on first use (in the worker that needs them)."""
        if self._rows is None:
            with self._lock:
                if self._rows is None:
                    self._rows = self._rows_factory()
        return self._rows

    @staticmethod
    def facts_of(row: dict[str, Any] | None) -> tuple[Any, ...]:
        """The facts of a store row (for a derived cache: ``facts_factory``)."""
        return PolicyGate._parse_facts(row or {})

    def item_facts(self, skus: list[str]) -> list[tuple[Any, ...]]:
        """The items' facts (``_parse_facts``; ``RANKER_FACTS`` indexes the ranker's), for
        ``candidates(skus, facts)``."""
        if self._facts_factory is not None:
            if self._facts_reader is None:
                reader = self._reader()
                with self._lock:
                    if self._facts_reader is None:
                        self._facts_reader = self._facts_factory(reader)
            return self._facts_reader.read_many("item", skus)
        rows = self._reader().read_many("item", skus)
        memo = self._facts
        out = []
        for sku, r in zip(skus, rows, strict=True):
            hit = memo.get(sku)
            if hit is None or hit[0] is not r:  # a row read again is a new object
                if len(memo) > 200_000:
                    memo.clear()
                hit = memo[sku] = (r, self._parse_facts(r or {}))
            out.append(hit[1])
        return out

    def prefetch(self, feats: list[Any]) -> None:
        """Warm the caches for a chunk of decisions in one store round trip per entity:
        the item rows of their recent items and triggers, their categories' rows (and the
        popular list's)."""
        items: dict[str, None] = {}
        cats: dict[str, None] = {ALL: None}
        for f in feats:
            if not f.erased:
                items.update(dict.fromkeys(f.recent))
                items.update(dict.fromkeys(f.skus[:1]))
                cats.update(dict.fromkeys(f.categories))
        if all(f.erased for f in feats):
            return  # nothing to decide
        wanted = [(entity, list(keys)) for entity, keys in (("item", items), ("category", cats))
                  if keys]
        if wanted:
            read_groups(self._reader(), wanted)  # one store round trip for both

    @property
    def native(self) -> bool:
        """Whether the native kernels are asked for."""
        return self._native

    def prefetch_facts(self, skus: list[str]) -> None:
        """Warm the item facts of a chunk's candidates (one round trip for all misses)."""
        if skus:
            self.item_facts(list(dict.fromkeys(skus)))

    @property
    def store_degraded(self) -> bool:
        """The store's last read failed (an outage): facts are the declared defaults."""
        return bool(getattr(self._rows, "degraded", False))

    def configurable(self, sku: str) -> bool:
        return bool(self.item_facts([sku])[0][6])

    @property
    def runtime(self) -> ToolRuntime:
        """The agent's tools over this process's store (built once, shared by shards)."""
        if self._runtime is None:
            rows = self._reader()
            with self._lock:
                if self._runtime is None:
                    extra = self._extra_tools(rows) if self._extra_tools is not None else []
                    self._runtime = ToolRuntime(store_tools(rows, self._native) + extra)
        return self._runtime

    def candidates(self, skus: list[str], facts: list[tuple[Any, ...]] | None = None
                   ) -> Candidates:
        """The policy's candidate columns of ``skus`` (``facts``: theirs, read already)."""
        if facts is None:
            facts = self.item_facts(skus)
        if not facts:
            return Candidates([], [], [], [], [])
        cats, brands, prices, avail, ages, regions, _, tops, _ = (
            list(col) for col in zip(*facts, strict=True))
        return Candidates(skus=list(skus), categories=cats, brands=brands, prices=prices,
                          available=avail, min_ages=ages, regions=regions, tops=tops)
