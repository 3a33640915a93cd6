"""Exponentially decayed counters in event time, independent of arrival order.

A counter holds ``(value, ref_ts)``: the decayed sum as of ``ref_ts``. Adding an event at
``ts`` older than ``ref_ts`` decays the event's contribution instead of the counter, so the
result does not depend on the order events arrive in (up to float rounding).

>>> c = add((0.0, 0), 1.0, 0, half_life_ms=1000)
>>> c = add(c, 1.0, 1000, half_life_ms=1000)
>>> c
(1.5, 1000)
>>> add(add((0.0, 0), 1.0, 1000, 1000), 1.0, 0, 1000)   # same events, other order
(1.5, 1000)
>>> value_at(c, 2000, 1000)
0.75
"""

from __future__ import annotations

import math

LN2 = math.log(2.0)
Counter = tuple[float, int]


def factor(dt_ms: int, half_life_ms: float) -> float:
    """Decay factor over ``dt_ms`` (>= 0)."""
    return math.exp(-LN2 * dt_ms / half_life_ms)


def add(counter: Counter, amount: float, ts: int, half_life_ms: float) -> Counter:
    value, ref = counter
    if ts >= ref:
        return value * factor(ts - ref, half_life_ms) + amount, ts
    return value + amount * factor(ref - ts, half_life_ms), ref


def value_at(counter: Counter, ts: int, half_life_ms: float) -> float:
    """The counter's value as of ``ts`` (never grows into the past: ts < ref gives value)."""
    value, ref = counter
    return value * factor(ts - ref, half_life_ms) if ts > ref else value
