"""The online store interface shared by the embedded (in-process) and Redis stores.

Writes carry the event time of the value they hold: a store never lets an older value
overwrite a newer one, so replays after recovery and late duplicates are harmless.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

Fields = dict[str, str | int | float]


class StoreWrite(NamedTuple):
    entity: str  # "user", "item", "feed", ...
    key: str
    fields: Fields
    ts: int  # event time of the value, epoch ms
    ttl_s: int  # 0 = no expiry


class StorePurge(NamedTuple):
    entity: str
    key: str


StoreOp = StoreWrite | StorePurge


class OnlineStore(Protocol):
    def apply(self, ops: list[StoreOp]) -> None:
        """Apply writes and purges in order (one round trip where the store allows)."""

    def read_many(self, entity: str, keys: list[str]) -> list[Fields | None]:
        """Current fields of many keys at once; ``None`` where absent or expired."""

    def close(self) -> None: ...
