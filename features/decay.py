"""Forward-decayed weights in event time: order-independent, O(1) per update.

A ``DecayedMap`` keeps, per key, ``g = sum(amount * 2**((ts - landmark) / half_life))``.
The value as of time ``T`` is ``g * 2**(-(T - landmark) / half_life)``: an exponentially
decayed sum in event time, whatever order the events arrive in, without touching other keys
on update. The landmark moves forward (rescaling every entry) only when the exponent grows
large, so floats never overflow. Size is bounded: past ``max_size`` keys the weakest go.

>>> m = DecayedMap(half_life_ms=1000)
>>> m.add("a", 1.0, 0); m.add("a", 1.0, 1000); m.add("b", 1.0, 500)
>>> round(m.value("a", 1000), 6), round(m.value("a", 2000), 6)
(1.5, 0.75)
>>> m2 = DecayedMap(half_life_ms=1000)          # same events, another order
>>> m2.add("b", 1.0, 500); m2.add("a", 1.0, 1000); m2.add("a", 1.0, 0)
>>> round(m2.value("a", 1000), 9) == round(m.value("a", 1000), 9)
True
>>> [k for k, _ in m.top(2, 1000)]
['a', 'b']
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from operator import itemgetter
from typing import Any

_VALUE = itemgetter(1)

_RESCALE_AT = 60.0  # rescale once entries have grown by 2**60


class DecayedMap:
    __slots__ = ("hl", "landmark", "w")

    def __init__(self, half_life_ms: float, landmark: int = 0) -> None:
        self.hl = float(half_life_ms)
        self.landmark = landmark
        self.w: dict[str, float] = {}

    def _rebase(self, ts: int) -> None:
        f = 2.0 ** (-(ts - self.landmark) / self.hl)
        self.w = {k: v * f for k, v in self.w.items()}
        self.landmark = ts

    def _growth(self, ts: int) -> float:
        """``2**((ts - landmark) / hl)``, moving the landmark first if that grew too large."""
        if not self.w:
            self.landmark = ts
        e = (ts - self.landmark) / self.hl
        if e > _RESCALE_AT:
            self._rebase(ts)
            e = 0.0
        return float(2.0 ** e)

    def add(self, key: str, amount: float, ts: int) -> None:
        inc = amount * self._growth(ts)  # first: it may rescale every entry
        self.w[key] = self.w.get(key, 0.0) + inc

    def set(self, key: str, value: float, ts: int) -> None:
        """Make ``key``'s value as of ``ts`` equal ``value`` (a gauge, not a sum)."""
        self.w[key] = value * self._growth(ts)

    def add_all(self, keys: Iterable[str], amount: float, ts: int) -> None:
        """``add`` for several keys at one time (one exponent for all)."""
        inc = amount * self._growth(ts)
        w = self.w
        for key in keys:
            w[key] = w.get(key, 0.0) + inc

    def _decay(self, as_of: int) -> float:
        """Factor from stored weights to values as of ``as_of``; a read before the landmark
        is answered as of the landmark (values never grow into the past)."""
        return float(2.0 ** (-max(0, as_of - self.landmark) / self.hl))

    def value(self, key: str, as_of: int) -> float:
        g = self.w.get(key)
        return 0.0 if g is None else g * self._decay(as_of)

    def total(self, as_of: int) -> float:
        return sum(self.w.values()) * self._decay(as_of)

    def top(self, k: int, as_of: int) -> list[tuple[str, float]]:
        """The ``k`` strongest keys as of ``as_of`` (ties by key: deterministic)."""
        f = self._decay(as_of)
        return [(key, g * f) for key, g in strongest(self.w, k)]

    def bound(self, max_size: int, slack: int = 0) -> None:
        """Keep the ``max_size`` strongest keys (decay is common to all: order by ``g``),
        once there are more than ``max_size + slack`` (amortizes the sort)."""
        if len(self.w) > max_size + slack:
            self.w = dict(strongest(self.w, max_size))

    def __getstate__(self) -> Any:
        return (self.hl, self.landmark, self.w)

    def __setstate__(self, s: Any) -> None:
        self.hl, self.landmark, self.w = s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DecayedMap) and self.__getstate__() == other.__getstate__()


def strongest(weights: dict[str, float], k: int) -> list[tuple[str, float]]:
    """The ``k`` largest ``(key, weight)`` pairs, ties by key. One C-level sort by weight;
    only when two of the first ``k + 1`` weights are equal (a tie that could decide what is
    in or its order) does a second sort by key settle it (weights are finite: no NaN).

    >>> strongest({"b": 1.0, "a": 1.0, "c": 2.0}, 2)
    [('c', 2.0), ('a', 1.0)]
    """
    items = sorted(weights.items(), key=_VALUE, reverse=True)
    head = [v for _, v in items[:k + 1]]
    if len(set(head)) == len(head):
        return items[:k]
    return sorted(sorted(items), key=_VALUE, reverse=True)[:k]


def rate_per_day(decayed_sum: float, half_life_ms: float) -> float:
    """Steady-state event rate implied by a decayed sum: ``S * ln 2 / half_life``."""
    return decayed_sum * math.log(2.0) / (half_life_ms / 86_400_000)
