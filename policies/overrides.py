"""Operator overrides: suppress or pin items for a user, a segment or everyone, for a period
of event time; and disputes of past decisions.

An ``OverrideSet`` is versioned like a policy pack: every applied change (a new override, a
cleared one, a dispute) makes a new version ``overrides@N``, and the decision records name
the overrides they applied. Users are named by pseudonym (``user_ref``); a segment is the
user's strongest category (its top level, e.g. ``bikes``). A dispute of a decision
suppresses its disputed items for that user from the dispute on.

>>> s = OverrideSet()
>>> s.apply("ov1", "suppress", "all", None, ("SKU1",), 1_000, None, "ops")
'overrides@1: suppress SKU1 for everyone from 1000'
>>> s.apply("ov2", "pin", "segment", "bikes", ("SKU9",), 1_000, 5_000, "ops")
'overrides@2: pin SKU9 for segment bikes from 1000 until 5000'
>>> s.for_user("ref-1", "bikes", 2_000)
(frozenset({'SKU1'}), ('SKU9',), ('ov1@1', 'ov2@2'))
>>> s.for_user("ref-1", "bikes", 6_000)  # the pin's period is over
(frozenset({'SKU1'}), (), ('ov1@1',))
>>> s.dispute("feed:ref-1:ev-7", ("SKU3",), 3_000, "support", "complaint")
'overrides@3: dispute of feed:ref-1:ev-7: suppress SKU3 for user ref-1 from 3000 (complaint)'
>>> sorted(s.for_user("ref-1", None, 3_000)[0])
['SKU1', 'SKU3']
"""

from __future__ import annotations

from typing import NamedTuple

NONE: tuple[frozenset[str], tuple[str, ...], tuple[str, ...]] = (frozenset(), (), ())


class Override(NamedTuple):
    id: str
    mode: str  # suppress | pin
    scope: str  # user | segment | all
    target: str | None  # the user's pseudonym, or the segment
    skus: tuple[str, ...]
    from_ts: int
    until_ts: int | None
    version: int


class OverrideSet:
    """The overrides in force; user-scoped ones (disputes among them) are indexed by user,
    so a decision looks at its user's and the shared ones only."""

    def __init__(self) -> None:
        self.version = 0
        self.active: dict[str, Override] = {}
        self.by_user: dict[str, dict[str, Override]] = {}
        self.shared: dict[str, Override] = {}  # scope all or segment

    def _index(self, o: Override, add: bool) -> None:
        if o.scope == "user":
            mine = self.by_user.setdefault(o.target or "", {})
            if add:
                mine[o.id] = o
            else:
                mine.pop(o.id, None)
                if not mine:
                    del self.by_user[o.target or ""]
        elif add:
            self.shared[o.id] = o
        else:
            self.shared.pop(o.id, None)

    def apply(self, override_id: str, mode: str, scope: str, target: str | None,
              skus: tuple[str, ...], from_ts: int, until_ts: int | None, by: str) -> str:
        """Add (or replace) an override, or clear one (``mode == "clear"``); returns the
        change's description under its new version."""
        self.version += 1
        v = f"overrides@{self.version}"
        old = self.active.pop(override_id, None)
        if old is not None:
            self._index(old, add=False)
        if mode == "clear":
            return f"{v}: clear {override_id}" + ("" if old else " (not active)")
        o = self.active[override_id] = Override(override_id, mode, scope, target, tuple(skus),
                                                from_ts, until_ts, self.version)
        self._index(o, add=True)
        who = {"all": "everyone", "segment": f"segment {target}",
               "user": f"user {target}"}[scope]
        until = f" until {until_ts}" if until_ts is not None else ""
        return f"{v}: {mode} {','.join(skus)} for {who} from {from_ts}{until}"

    def dispute(self, decision_id: str, skus: tuple[str, ...], ts: int, by: str,
                reason: str | None) -> str:
        """A disputed decision: its items are suppressed for its user from ``ts`` on."""
        parts = decision_id.split(":")
        user_ref = parts[1] if len(parts) >= 3 else decision_id
        change = self.apply(f"dispute:{decision_id}", "suppress", "user", user_ref, skus, ts,
                            None, by)
        head, _, rest = change.partition(": ")
        return f"{head}: dispute of {decision_id}: {rest}" + (f" ({reason})" if reason else "")

    def for_user(self, user_ref: str, segment: str | None, ts: int
                 ) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
        """(suppressed skus, pinned skus in override order, the applied overrides as
        ``id@version``) for one user at event time ``ts``."""
        if not self.active:
            return NONE
        suppressed: set[str] = set()
        pinned: list[str] = []
        applied: list[str] = []
        mine = self.by_user.get(user_ref)
        candidates = [*self.shared.values(), *(mine.values() if mine else ())]
        candidates.sort(key=lambda o: o.version)  # in the order they were given
        for o in candidates:
            if ts < o.from_ts or (o.until_ts is not None and ts > o.until_ts):
                continue
            if o.scope == "segment" and o.target != segment:
                continue
            applied.append(f"{o.id}@{o.version}")
            if o.mode == "suppress":
                suppressed.update(o.skus)
            else:
                pinned.extend(s for s in o.skus if s not in pinned)
        return frozenset(suppressed), tuple(s for s in pinned if s not in suppressed), tuple(
            applied)
