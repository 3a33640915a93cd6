"""What session-kNN retrieval reads (``features.retrieval.session_neighbours``): per item, the
keys (users, or sessions in a session dataset) that touched it lately; per key, its trail of
recent distinct items. Both are folds over the user step's decision inputs
(``UserFeatures`` of behaviour events), so they see the same events in the same order as the
user fold, natively built or not.

- ``ItemKeysFold`` (keyed by item): the last ``KEYS_PER_ITEM`` distinct keys, newest first.
- ``TrailFold`` (keyed by user): the last ``TRAIL`` distinct items, newest first; an
  erasure deletes it (its store row is purged, so an erased key's id still listed on an
  item row leads to nothing, until newer keys push it out).

>>> keys, trail = ItemKeysFold(), TrailFold()
>>> s = keys.new()
>>> for user, ts in (("u1", 1), ("u2", 2), ("u1", 3)):
...     _ = keys.apply(s, ("A", user, ts))
>>> keys.rows(s, "A")[0].fields["keys"]
'u1,u2'
>>> t = trail.new()
>>> for sku, ts in (("A", 1), ("B", 2), ("A", 3)):
...     _ = trail.apply(t, ("u1", sku, ts))
>>> trail.rows(t, "u1")[0].fields["items"]
'A,B'
"""

from __future__ import annotations

from typing import Any

from features.definitions import ITEM_KEYS, USER_TRAIL
from features.interactions import BEHAVIOUR
from features.store import StorePurge, StoreWrite

KEYS_PER_ITEM = 50
TRAIL = 10
TRAIL_ENTITY = "trail"  # the store entity of trails (a fact entity: read as of event time)


def touches(feats: list[Any]) -> list[tuple[str, str, int]]:
    """(sku, key, ts) of each behaviour event among ``UserFeatures``, in order."""
    return [(sku, f.user_id, f.ts) for f in feats
            if not f.erased and f.kind in BEHAVIOUR for sku in f.skus[:1]]


def trail_inputs(feats: list[Any]) -> list[tuple[str, str, int] | tuple[str, None, int]]:
    """(key, sku, ts) of each behaviour event, (key, None, ts) of each erasure."""
    out: list[Any] = []
    for f in feats:
        if f.erased:
            out.append((f.user_id, None, f.ts))
        elif f.kind in BEHAVIOUR and f.skus:
            out.append((f.user_id, f.skus[0], f.ts))
    return out


class Recent:
    """Distinct values, newest first, at most ``cap``; an out-of-order value goes behind
    the newer ones (as ``UserFold``'s last items)."""

    __slots__ = ("values", "last_ts", "dirty", "erased")

    def __init__(self) -> None:
        self.values: list[str] = []
        self.last_ts = 0
        self.dirty = False
        self.erased = False

    def __getstate__(self) -> Any:
        return (self.values, self.last_ts, self.dirty)

    def __setstate__(self, st: Any) -> None:
        self.values, self.last_ts, self.dirty = st
        self.erased = False

    def add(self, value: str, ts: int, cap: int) -> None:
        v = self.values
        if ts >= self.last_ts:
            if value in v:
                v.remove(value)
            v.insert(0, value)
            del v[cap:]
            self.last_ts = ts
        elif value not in v and len(v) < cap:
            v.append(value)
        self.dirty = True


class _RecentFold:
    entity = ""
    field = ""

    def __init__(self, ttl_s: int | None, prefix: str, view_ttl: int) -> None:
        self.prefix = prefix
        self.ttl = view_ttl if ttl_s is None else ttl_s

    def new(self) -> Recent:
        return Recent()

    @staticmethod
    def touch(s: Recent) -> bool:
        """Mark the state changed if it holds data (a resumed shard re-fills its rows)."""
        s.dirty = s.dirty or bool(s.values)
        return s.dirty

    def rows(self, s: Recent, key: str) -> list[StoreWrite]:
        if not s.dirty:
            return []
        s.dirty = False
        t = s.last_ts
        return [StoreWrite(self.entity, key, self.prefix,
                           {self.field: ",".join(s.values), "as_of": t}, t, self.ttl)]


class ItemKeysFold(_RecentFold):
    entity, field = "item", "keys"

    def __init__(self, ttl_s: int | None = None) -> None:
        super().__init__(ttl_s, ITEM_KEYS.store_prefix, ITEM_KEYS.ttl_s)

    def apply(self, s: Recent, x: tuple[str, str, int]) -> list[Any]:
        s.add(x[1], x[2], KEYS_PER_ITEM)
        return []


class TrailFold(_RecentFold):
    entity, field = TRAIL_ENTITY, "items"

    def __init__(self, ttl_s: int | None = None) -> None:
        super().__init__(ttl_s, USER_TRAIL.store_prefix, USER_TRAIL.ttl_s)

    def apply(self, s: Recent, x: tuple[str, str | None, int]) -> list[Any]:
        key, sku, ts = x
        if sku is None:  # erased: the state goes (``erased``), its row is purged
            s.values, s.dirty, s.erased = [], False, True
            return [StorePurge(TRAIL_ENTITY, key)]
        s.add(sku, ts, TRAIL)
        return []
