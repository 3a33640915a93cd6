"""Sliding-window counts by event type in event time, as bounded ring buffers.

Three resolutions serve three windows: 5-minute buckets for 1 hour, 1-hour buckets for
24 hours, 1-day buckets for 7 days. A window ``as of T`` sums the buckets whose index lies
in ``(idx(T) - n, idx(T)]``: exact at bucket granularity, never counting events after the
bucket of ``T`` (point-in-time). Late events within the retained span land in their bucket.

>>> w = WindowCounts()
>>> w.add(0, 0); w.add(0, 59 * 60_000); w.add(1, 61 * 60_000)
>>> w.count(0, "1h", 59 * 60_000), w.count(0, "1h", 66 * 60_000), w.count(1, "24h", 2 * 3_600_000)
(2, 1, 1)
"""

from __future__ import annotations

from typing import Any

MIN = 60_000
RINGS = {"1h": (5 * MIN, 12), "24h": (60 * MIN, 24), "7d": (1440 * MIN, 7)}
N_TYPES = 3  # 0 = view/click, 1 = cart add, 2 = order
TYPE_INDEX = {"page_view": 0, "click": 0, "add_to_cart": 1, "order": 2}


_BITS = 21  # counts by type packed in one int per bucket: up to 2M per type and bucket
_MASK = (1 << _BITS) - 1


class WindowCounts:
    __slots__ = ("rings", "retain")

    def __init__(self, retain_extra_ms: int = 3_600_000) -> None:
        # ring name -> {bucket index -> counts by type, packed _BITS bits each}
        self.rings: dict[str, dict[int, int]] = {name: {} for name in RINGS}
        self.retain = retain_extra_ms

    def add(self, type_idx: int, ts: int, n: int = 1) -> None:
        inc = min(n, _MASK) << (_BITS * type_idx)
        for name, (size, _) in RINGS.items():
            ring = self.rings[name]
            b = ts // size
            ring[b] = ring.get(b, 0) + inc

    def prune(self, now: int) -> None:
        """Forget buckets that no window as of ``now - retain`` can reach."""
        for name, (size, n) in RINGS.items():
            ring = self.rings[name]
            oldest = (now - self.retain) // size - n
            for b in [b for b in ring if b <= oldest]:
                del ring[b]

    def count(self, type_idx: int, window: str, as_of: int) -> int:
        return self.counts(window, as_of)[type_idx]

    def counts(self, window: str, as_of: int) -> tuple[int, int, int]:
        """Counts of every type (views, cart adds, orders) in ``window`` as of ``as_of``,
        in one pass over the ring."""
        size, n = RINGS[window]
        hi = as_of // size
        lo = hi - n
        views = carts = orders = 0
        for b, c in self.rings[window].items():
            if lo < b <= hi:
                views += c & _MASK
                carts += (c >> _BITS) & _MASK
                orders += c >> (2 * _BITS)
        return views, carts, orders

    def __getstate__(self) -> Any:
        return (self.rings, self.retain)

    def __setstate__(self, s: Any) -> None:
        self.rings, self.retain = s
