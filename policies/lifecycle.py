"""Policy pack lifecycle: register, activate, shadow, canary, rollback — all logged.

``PolicyEngine`` holds the registered packs (compiled) and which one is active; a shadow
pack is evaluated beside the active one and its differences logged without being
enforced; a canary pack serves a stable, hash-assigned share of users; rollback returns to
the previously active pack. ``control`` takes the fields of a ``control`` event, so the
running flow changes policy through its own input. A bad pack is refused at ``register``
and never becomes active: the last good one stays. Every change, refused ones included,
is appended to ``changes``.

>>> from policies.pack import load_pack
>>> text = 'pack = "p"\\nversion = "{v}"\\n[[rules]]\\nid = "s"\\ntype = "stock"\\n'
>>> eng = PolicyEngine([load_pack(text.format(v="1"))], active="p@1")
>>> eng.register(text.format(v="2"), "p2.toml").ok
True
>>> eng.register("pack = ", "broken.toml").ok, eng.active
(False, 'p@1')
>>> eng.control("switch_policy", "2", ts=5).ok, eng.active
(True, 'p@2')
>>> eng.control("rollback_policy", None, ts=6).ok, eng.active
(True, 'p@1')
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from policies.evaluate import Candidates, CompiledPack, PolicyResult, UserContext, V, render
from policies.pack import PackError, PolicyPack, load_pack


class PackChange(NamedTuple):
    seq: int
    ts: int
    action: str
    pack: str | None
    detail: str
    issued_by: str
    ok: bool


class Outcome(NamedTuple):
    result: PolicyResult
    canary: bool
    shadow_differences: list[tuple[str, V]]  # ("shadow_only" | "active_only", verdict)


def canary_bucket(ref: str, user_id: str) -> int:
    """A stable bucket in [0, 10000) per (pack, user): same user, same answer, every time."""
    return int(hashlib.sha256(f"{ref}:{user_id}".encode()).hexdigest()[:8], 16) % 10_000


class PolicyEngine:
    def __init__(self, packs: list[PolicyPack], active: str) -> None:
        self.packs: dict[str, CompiledPack] = {p.ref: CompiledPack(p) for p in packs}
        self.known: set[str] = set(self.packs)  # every ref ever registered (survives pickling)
        if active not in self.packs:
            raise ValueError(f"active pack {active} is not among the packs given")
        self.active = active
        self.history: list[str] = []
        self.shadow: str | None = None
        self.canary: tuple[str, float] | None = None
        self.changes: list[PackChange] = []

    @classmethod
    def from_compiled(cls, packs: dict[str, CompiledPack], active: str) -> PolicyEngine:
        """An engine over packs compiled once per process (shared, never pickled)."""
        eng = cls.__new__(cls)
        eng.__setstate__({"known": set(packs), "active": active, "history": [],
                          "shadow": None, "canary": None, "changes": []})
        eng.attach(packs)
        return eng

    # ------------------------------------------------------------------ changes
    def _log(self, ts: int, action: str, pack: str | None, detail: str, by: str,
             ok: bool) -> PackChange:
        ch = PackChange(len(self.changes) + 1, ts, action, pack, detail, by, ok)
        self.changes.append(ch)
        return ch

    def register(self, text: str, source: str, ts: int = 0, by: str = "loader") -> PackChange:
        try:
            pack = load_pack(text, source)
        except PackError as e:
            return self._log(ts, "register", None, str(e), by, False)
        if pack.ref in self.packs and self.packs[pack.ref].pack != pack:
            return self._log(ts, "register", pack.ref, "a different pack with this version is "
                             "already registered: bump the version", by, False)
        self.packs[pack.ref] = CompiledPack(pack)
        self.known.add(pack.ref)
        return self._log(ts, "register", pack.ref, f"{len(pack.rules)} rules from {source}", by,
                         True)

    def _resolve(self, version: str | None) -> str | None:
        if not version:
            return None
        if "@" in version:
            return version if version in self.packs else None
        name = self.active.split("@")[0]
        ref = f"{name}@{version}"
        return ref if ref in self.packs else None

    def control(self, action: str, version: str | None, percent: float | None = None,
                ts: int = 0, issued_by: str = "unknown") -> PackChange:
        """Apply a control event's policy action; unknown versions are refused and logged."""
        ref = self._resolve(version)
        if action == "rollback_policy":
            if not self.history:
                return self._log(ts, action, None, "nothing to roll back to", issued_by, False)
            prev, self.active = self.active, self.history.pop()
            self.canary = None
            return self._log(ts, action, self.active, f"from {prev}", issued_by, True)
        if action == "shadow_policy" and not version:
            self.shadow = None
            return self._log(ts, action, None, "shadow cleared", issued_by, True)
        if action == "canary_policy" and (not version or not percent):
            self.canary = None
            return self._log(ts, action, None, "canary cleared", issued_by, True)
        if ref is None:
            return self._log(ts, action, version, "unknown pack version", issued_by, False)
        if action == "switch_policy":
            if ref != self.active:
                self.history.append(self.active)
            self.active = ref
            if self.canary and self.canary[0] == ref:
                self.canary = None
            return self._log(ts, action, ref, "activated", issued_by, True)
        if action == "shadow_policy":
            self.shadow = ref
            return self._log(ts, action, ref, "shadowing", issued_by, True)
        if action == "canary_policy":
            self.canary = (ref, float(percent or 0))
            return self._log(ts, action, ref, f"canary for {percent}% of users", issued_by, True)
        return self._log(ts, action, ref, "not a policy action", issued_by, False)

    # ------------------------------------------------------------------ persistence
    def __getstate__(self) -> dict[str, Any]:
        """Snapshots keep the lifecycle status, not the compiled packs (see ``attach``)."""
        return {k: v for k, v in self.__dict__.items() if k != "packs"}

    def __setstate__(self, st: dict[str, Any]) -> None:
        self.__dict__.update(st)
        self.packs = {}

    def attach(self, packs: dict[str, CompiledPack]) -> None:
        """Give a restored engine its compiled packs back (from the same pack files)."""
        self.packs = {**packs, **self.packs}
        missing = self.known - set(self.packs)
        if missing:
            raise ValueError(f"packs {sorted(missing)} were active here but are not loaded")

    # ------------------------------------------------------------------ evaluation
    def pack_for(self, user_id: str) -> tuple[CompiledPack, bool]:
        if self.canary is not None:
            ref, pct = self.canary
            if canary_bucket(ref, user_id) < pct * 100:
                return self.packs[ref], True
        return self.packs[self.active], False

    def evaluate(self, user: UserContext, action: str, cands: Candidates,
                 now_ms: int) -> Outcome:
        pack, is_canary = self.pack_for(user.user_id)
        result = pack.evaluate(user, action, cands, now_ms)
        diffs: list[tuple[str, V]] = []
        if self.shadow is not None and self.shadow != pack.pack.ref:
            shadow = self.packs[self.shadow].evaluate(user, action, cands, now_ms)
            a, s = result.verdict_set(), shadow.verdict_set()
            diffs = [("shadow_only", v) for v in shadow.verdicts if
                     (v.rule, v.effect, v.subject, v.reason) not in a]
            diffs += [("active_only", v) for v in result.verdicts if
                      (v.rule, v.effect, v.subject, v.reason) not in s]
        return Outcome(result, is_canary, diffs)


_ATOMS = (str, int, float, bool)  # a tuple: an X | Y union is built on every call


def record_fields(outcome: Outcome, skus: list[str], max_verdicts: int = 1024) -> dict[str, Any]:
    """The policy part of a decision record (``features.events.DecisionRecord`` fields)."""
    r = outcome.result

    def to_event(v: V, prefix: str = "") -> dict[str, Any]:
        # the fields of features.events.Verdict; our own values, validated by the tests
        inputs = {k: (val if val is None or isinstance(val, _ATOMS) else str(val))
                  for k, val in v.inputs}
        d = {"rule": v.rule, "rule_version": r.version, "effect": v.effect,
             "reason": (prefix + render(v))[:512], "inputs": inputs}
        if v.subject >= 0:
            d["subject"] = skus[v.subject]
        return d

    return {
        "policy_pack": r.pack, "policy_version": r.version,
        "verdicts": [to_event(v) for v in r.verdicts[:max_verdicts]],
        "shadow_differences": [to_event(v, f"{kind}: ") for kind, v in
                               outcome.shadow_differences[:max_verdicts]],
    }
