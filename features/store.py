"""The online store interface shared by the embedded (in-process) and Redis stores.

Writes carry the event time of the value they hold: a store never lets an older value
overwrite a newer one, so replays after recovery and late duplicates are harmless.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

Fields = dict[str, str | int | float]


class StoreWrite(NamedTuple):
    """Fields of one feature view for one entity key, as of event time ``ts``.

    Fields are stored under ``<view>.<field>``; the view's own time decides "newer".
    """

    entity: str  # "user", "item", "session", "feed", ...
    key: str
    view: str  # store prefix of the view, e.g. "user_activity_v1"
    fields: Fields
    ts: int  # event time of the value, epoch ms
    ttl_s: int  # 0 = no expiry; the key lives as long as its longest-lived view


class StorePurge(NamedTuple):
    """Delete one key, or with ``prefix`` every key of the entity that starts with ``key``."""

    entity: str
    key: str
    prefix: bool = False


StoreOp = StoreWrite | StorePurge


def latest_only(ops: list[StoreOp]) -> list[StoreOp]:
    """Collapse a batch: per (entity, key, view) keep the newest write (by event time,
    then arrival); purges stay in place and cut off the writes before them.

    >>> w = lambda ts, n: StoreWrite("user", "u", "v1", {"n": n}, ts, 0)
    >>> [op.fields["n"] for op in latest_only([w(1, 1), w(3, 3), w(2, 2)])]
    [3]
    """
    out: list[StoreOp] = []
    pos: dict[tuple[str, str, str], int] = {}
    for op in ops:
        if isinstance(op, StorePurge):
            out.append(op)
            for k in [k for k in pos if k[0] == op.entity and (
                    k[1] == op.key or (op.prefix and k[1].startswith(op.key)))]:
                del pos[k]
            continue
        k = (op.entity, op.key, op.view)
        i = pos.get(k)
        if i is None:
            pos[k] = len(out)
            out.append(op)
        elif op.ts >= out[i].ts:  # type: ignore[union-attr]
            out[i] = op
    return out


class OnlineStore(Protocol):
    def apply(self, ops: list[StoreOp]) -> None:
        """Apply writes and purges in order (one round trip where the store allows)."""

    def read_many(self, entity: str, keys: list[str]) -> list[Fields | None]:
        """Current fields (``<view>.<field>`` names) of many keys; ``None`` where absent."""

    def close(self) -> None: ...


class RowReader(Protocol):
    """What reads rows: an online store, or a cache of its rows
    (``connectors.cached_store.CachedRows``)."""

    def read_many(self, entity: str, keys: list[str]) -> list[Any]: ...


def read_groups(store: Any, requests: list[tuple[str, list[str]]]) -> list[list[Any]]:
    """``read_many`` for several (entity, keys) requests: one round trip when the store
    offers ``read_groups`` (Redis, the tools' row cache), else one call per request.

    >>> class S:
    ...     def read_many(self, entity, keys): return [f"{entity}:{k}" for k in keys]
    >>> read_groups(S(), [("item", ["A"]), ("category", ["c", "d"])])
    [['item:A'], ['category:c', 'category:d']]
    """
    many = getattr(store, "read_groups", None)
    if many is not None:
        return many(requests)  # type: ignore[no-any-return]
    return [store.read_many(entity, keys) for entity, keys in requests]
