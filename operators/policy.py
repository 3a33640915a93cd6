"""Policy step support: the per-shard policy engine and the candidates it judges.

Every decision shard keeps a ``PolicyEngine`` in its shared state; control events are
broadcast to all shards, so each applies the same changes in the same order, and only
shard 0 emits the ``policy_change`` events (one log line per change, not one per shard).
Candidates are built from the online store's item rows (catalog, stock, price), read in
one round trip for all missing ones and cached for ``cache_s`` seconds per process
(``operators.store_tools.CachedRows``); the agent's tools read item and category rows
through the same cache, which the candidate step warms per chunk of decisions
(``prefetch``, ``prefetch_facts``): one round trip per chunk rather than several per
decision when the store is Redis. With ``stale_s`` (``tool_cache_stale_s``), rows seen
lately are served from the cache while a background thread reads them again, so the
worker waits for the store only for rows it has not seen in ``cache_s + stale_s``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from features.events import Control, PolicyChange, outgoing
from features.store import OnlineStore
from operators.store_tools import CachedRows, store_tools
from operators.tools import ToolRuntime
from policies.evaluate import Candidates, CompiledPack, top_category
from policies.lifecycle import PolicyEngine
from policies.pack import PackError, load_pack

POLICY_CHANNEL = "policy_changes"
POLICY_ACTIONS = ("switch_policy", "shadow_policy", "canary_policy", "rollback_policy")


class PolicyGate:
    """Builds engines from pack files and candidates from the store (one per process)."""

    def __init__(self, pack_files: list[tuple[str, str]], active: str | None,
                 store_factory: Callable[[], OnlineStore], cache_s: float = 1.0,
                 native: bool = True, stale_s: float = 0.0) -> None:
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
        self.active = active or sorted(packs)[0]
        if self.active not in packs:
            raise ValueError(f"active pack {self.active} is not among {sorted(packs)}")
        self._store_factory = store_factory
        self._store: OnlineStore | None = None
        self._rows: CachedRows | None = None
        self._facts_cache: CachedRows | None = None
        self._cache_s = cache_s
        self._stale_s = stale_s
        self._native = native
        self._lock = threading.Lock()
        self._runtime: ToolRuntime | None = None

    def new_engine(self) -> PolicyEngine:
        return PolicyEngine.from_compiled(self.packs, self.active)

    def ensure(self, eng: PolicyEngine) -> PolicyEngine:
        if not eng.packs:
            eng.attach(self.packs)
        return eng

    def control(self, eng: PolicyEngine, ctl: Control, emit: bool) -> list:
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
        return [outgoing(POLICY_CHANNEL, ch.pack or "none", PolicyChange(
            id=f"policy:{ctl.event_id}:{ch.seq}", ts=ch.ts, seq=ch.seq, action=ch.action,
            pack=ch.pack, detail=ch.detail[:2048], issued_by=ch.issued_by, ok=ch.ok,
            trigger_event_id=ctl.event_id)) for ch in eng.changes[before:]]

    # -------------------------------------------------------------- candidates
    @staticmethod
    def _facts(r: dict) -> tuple:
        """(category, brand, price, available, min_age, regions, configurable, top-level
        category) of an item's store row."""
        cat = r.get("item_catalog_v2.category", "")
        return (cat, r.get("item_catalog_v2.brand", ""),
                float(r.get("item_price_v1.price", r.get("item_catalog_v2.catalog_price", 0.0))),
                r.get("item_stock_v1.available"), int(r.get("item_catalog_v2.min_age", 0)),
                tuple(x for x in str(r.get("item_catalog_v2.regions", "")).split(",") if x),
                bool(r.get("item_catalog_v2.options")), top_category(cat))

    def _caches(self) -> tuple[CachedRows, CachedRows]:
        """(store rows, item facts derived from them), built on first use."""
        if self._facts_cache is None or self._rows is None:
            with self._lock:
                if self._store is None:
                    self._store = self._store_factory()
                if self._rows is None:
                    self._rows = CachedRows(self._store, self._cache_s, max_keys=200_000,
                                            stale_s=self._stale_s)
                if self._facts_cache is None:
                    self._facts_cache = CachedRows(self._rows, self._cache_s,
                                                   max_keys=200_000,
                                                   derive=lambda r: self._facts(r or {}))
        return self._rows, self._facts_cache

    def _item_facts(self, skus: list[str]) -> list[tuple]:
        return self._caches()[1].read_many("item", skus)

    def prefetch(self, feats: list) -> None:
        """Warm the caches for a chunk of decisions in one store round trip per entity:
        the item rows of their recent items and triggers, their categories' rows."""
        items: dict[str, None] = {}
        cats: dict[str, None] = {}
        for f in feats:
            if not f.erased:
                items.update(dict.fromkeys(f.recent))
                items.update(dict.fromkeys(f.skus[:1]))
                cats.update(dict.fromkeys(f.categories))
        rows, _ = self._caches()
        wanted = [(entity, list(keys)) for entity, keys in (("item", items), ("category", cats))
                  if keys]
        if wanted:
            rows.read_groups(wanted)  # one store round trip for both

    def prefetch_facts(self, skus: list[str]) -> None:
        """Warm the item facts of a chunk's candidates (one round trip for all misses)."""
        if skus:
            self._item_facts(list(dict.fromkeys(skus)))

    @property
    def store_degraded(self) -> bool:
        """The store's last read failed (an outage): facts are the declared defaults."""
        return bool(getattr(self._store, "degraded", False))

    def configurable(self, sku: str) -> bool:
        return bool(self._item_facts([sku])[0][6])

    @property
    def runtime(self) -> ToolRuntime:
        """The agent's tools over this process's store (built once, shared by shards)."""
        if self._runtime is None:
            rows, _ = self._caches()
            with self._lock:
                if self._runtime is None:
                    assert self._store is not None  # built with the caches
                    self._runtime = ToolRuntime(store_tools(
                        self._store, self._cache_s, self._native, rows=rows))
        return self._runtime

    def candidates(self, skus: list[str]) -> Candidates:
        facts = self._item_facts(skus)
        if not facts:
            return Candidates([], [], [], [], [])
        cats, brands, prices, avail, ages, regions, _, tops = (
            list(col) for col in zip(*facts, strict=True))
        return Candidates(skus=list(skus), categories=cats, brands=brands, prices=prices,
                          available=avail, min_ages=ages, regions=regions, tops=tops)
