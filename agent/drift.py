"""Drift of a learned model's quality, and the safe fallback it triggers.

A ``LossMonitor`` watches one stream of per-example values with River's ADWIN: the
learner's *excess* log-loss, its prequential loss (each attributed example predicted before
it is learned) minus that of the base rate (the share of positives so far, also predicted
before each example), so a change in how often users act at all is not taken for a worse
model. When ADWIN finds a change, the monitor waits ``confirm`` more examples and, if their
mean is above the mean before the change by more than ``rise`` (nats) *and* above
``floor`` (0.03: the model clearly no longer beats the base rate), raises a *fallback*
alert (ADWIN's window right after a cut still holds mostly old examples, so its own mean
says little yet): the model stops ranking (the heuristic does) while it keeps learning.
It *recovers* once it has spent at least ``min_fallback`` examples in fallback and the mean
of the last ``window`` values is below ``-tolerance`` (it beats the base rate again, by a
margin): a second, lower threshold and a minimum dwell, so it does not flap. A drop is a
change too, but not an alert.

ADWIN is fed the mean of every ``batch`` (8) values, not each value: one update costs about
2 µs, and the mean of a batch carries the change as well (its variance is smaller); the
counts (``min_examples``, ``confirm``, ``window``) stay in examples, and the rolling means
are kept as running sums, so a monitor in alert costs no more per value than one at rest.

Everything counts examples, not wall time: the same examples in the same order give the
same alerts. The monitor's state is plain data (River's ADWIN pickles), kept in the
learner's state, so it recovers with it.

>>> import random
>>> rnd = random.Random(1)
>>> m = LossMonitor(rise=0.05, tolerance=0.02, min_examples=200, min_fallback=300,
...                 window=200, confirm=200, floor=0.0)
>>> events = [e for i in range(3000)
...           for e in m.observe(rnd.gauss(-0.1 if i < 1500 or i > 2200 else 0.3, 0.1))]
>>> [(e.action, e.at > 1500) for e in events]
[('fallback', True), ('recovered', True)]
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from river import drift


class DriftEvent(NamedTuple):
    action: str  # "fallback" or "recovered"
    at: int  # the example count when it happened
    statistic: float  # the mean that decided it
    threshold: float  # the bound it crossed
    reference: float  # the mean before the drift
    window: int  # examples the statistic is over


class _Window:
    """The last ``n`` values with their running sum."""

    __slots__ = ("values", "total")

    def __init__(self, n: int) -> None:
        self.values: deque[float] = deque(maxlen=max(n, 1))
        self.total = 0.0

    def add(self, x: float) -> None:
        v = self.values
        if len(v) == v.maxlen:
            self.total -= v[0]
        v.append(x)
        self.total += x

    @property
    def full(self) -> bool:
        return len(self.values) == self.values.maxlen

    def mean(self) -> float:
        return self.total / len(self.values)

    def last(self, k: int) -> list[float]:
        return list(self.values)[-k:]


class _Batched:
    """ADWIN over the means of ``batch`` values (``update`` says if it found a change)."""

    def __init__(self, delta: float, batch: int) -> None:
        self.adwin = drift.ADWIN(delta=delta)  # type: ignore[no-untyped-call]
        self.batch = max(int(batch), 1)
        self._sum, self._k = 0.0, 0

    def update(self, x: float) -> tuple[bool, float]:
        """(a change found, ADWIN's mean before this value's batch)."""
        self._sum += x
        self._k += 1
        before = float(self.adwin.estimation)
        if self._k < self.batch:
            return False, before
        self.adwin.update(self._sum / self._k)  # type: ignore[no-untyped-call]
        self._sum, self._k = 0.0, 0
        return bool(self.adwin.drift_detected), before


class LossMonitor:
    def __init__(self, delta: float = 0.002, rise: float = 0.10, tolerance: float = 0.02,
                 min_examples: int = 2000, min_fallback: int = 5000, window: int = 2000,
                 confirm: int = 2000, floor: float = 0.03, batch: int = 8) -> None:
        self.adwin = _Batched(delta, batch)
        # counts may come as floats (settings): whole numbers of examples
        window, confirm = max(int(window), int(confirm), 1), max(int(confirm), 1)
        min_examples, min_fallback = int(min_examples), int(min_fallback)
        self.rise, self.tolerance, self.confirm, self.floor = rise, tolerance, confirm, floor
        self.suspect: tuple[int, float] | None = None  # (at, mean before) of a change seen
        self.min_examples, self.min_fallback = min_examples, min_fallback
        self.recent = _Window(window)
        self.n = 0
        self.reference: float | None = None  # the mean loss before the drift, in fallback
        self.since = 0  # examples in fallback

    @property
    def in_fallback(self) -> bool:
        return self.reference is not None

    def enter(self) -> None:
        """Fallback on another monitor's alert (the CTR's): the return is judged as after
        a loss alert, against the loss's level now."""
        if self.reference is None:
            self.reference, self.since, self.suspect = \
                float(self.adwin.adwin.estimation), 0, None

    def observe(self, loss: float) -> list[DriftEvent]:
        self.n += 1
        self.recent.add(loss)
        changed, before = self.adwin.update(loss)
        if self.reference is None:
            if changed and self.n >= self.min_examples and self.suspect is None:
                self.suspect = (self.n, before)
            if self.suspect is not None and self.n - self.suspect[0] >= self.confirm:
                _, ref = self.suspect
                self.suspect = None
                last = self.recent.last(self.confirm)
                now, bound = sum(last) / len(last), max(ref + self.rise, self.floor)
                if now > bound:
                    self.reference, self.since = ref, 0
                    return [DriftEvent("fallback", self.n, now, bound, ref, len(last))]
            return []
        self.since += 1
        if self.since >= self.min_fallback and self.recent.full:
            mean = self.recent.mean()
            bound = -self.tolerance
            if mean <= bound:
                ref = self.reference
                self.reference = None
                return [DriftEvent("recovered", self.n, mean, bound, ref,
                                   len(self.recent.values))]
        return []


class RateMonitor:
    """Watches a rate (click-through of served feed items, conversion of offers): River's
    ADWIN on the 0/1 outcomes, and when it finds a change, ``confirm`` more outcomes decide:
    a mean below the mean before by at least ``drop`` (relative) and ``min_drop``
    (absolute) is an alert (``action`` "none": a report, the model keeps serving). It is
    *recovered* once the last ``window`` outcomes are back above the reference less half
    the drop. Counts outcomes, not time; plain data in the learner's state.

    >>> import random
    >>> rnd = random.Random(2)
    >>> m = RateMonitor(min_examples=500, confirm=500, window=500)
    >>> events = [e for i in range(12_000)
    ...           for e in m.observe(rnd.random() < (0.1 if 4000 <= i < 8000 else 0.3))]
    >>> [(e.action, e.at > 4000, round(e.reference, 1)) for e in events]
    [('none', True, 0.3), ('recovered', True, 0.3)]
    """

    def __init__(self, delta: float = 0.002, drop: float = 0.25, min_drop: float = 0.02,
                 min_examples: int = 2000, confirm: int = 1000, window: int = 1000,
                 batch: int = 8) -> None:
        self.adwin = _Batched(delta, batch)
        self.drop, self.min_drop = drop, min_drop
        self.min_examples, self.confirm = int(min_examples), max(int(confirm), 1)
        self.recent = _Window(self.confirm)  # the confirmation's values
        self.window = max(int(window), 1)
        self.tail = _Window(self.window)  # the recovery's
        self.n = 0
        self.suspect: tuple[int, float] | None = None
        self.reference: float | None = None  # the rate before the drop, while alerted

    def observe(self, y: float) -> list[DriftEvent]:
        self.n += 1
        y = float(y)
        self.recent.add(y)
        self.tail.add(y)
        changed, before = self.adwin.update(y)
        if self.reference is None:
            if changed and self.n >= self.min_examples and self.suspect is None:
                self.suspect = (self.n, before)
            if self.suspect is not None and self.n - self.suspect[0] >= self.confirm:
                _, ref = self.suspect
                self.suspect = None
                now = self.recent.mean()
                n = len(self.recent.values)
                bound = ref - max(ref * self.drop, self.min_drop)
                if now < bound:
                    self.reference = ref
                    return [DriftEvent("none", self.n, now, bound, ref, n)]
            return []
        if self.tail.full:
            mean = self.tail.mean()
            bound = self.reference - max(self.reference * self.drop, self.min_drop) / 2
            if mean >= bound:
                ref, self.reference = self.reference, None
                return [DriftEvent("recovered", self.n, mean, bound, ref, self.window)]
        return []
