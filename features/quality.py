"""Feature quality monitors: missing, out-of-range and stale values, and drift (PSI).

A ``ViewMonitor`` watches the rows one feature view writes. Per numeric field it counts
values that are missing, outside the view's declared bounds, or stale (the row's as-of
field lags the row's time by more than the view's ``staleness_s``), and compares the
distribution of the last ``window`` values with a reference window (the first values seen)
by the population stability index over reference deciles (not for timestamps, which move
forward by construction).

>>> from features.definitions import ITEM_PRICE
>>> m = ViewMonitor(ITEM_PRICE, reference_size=50, window=50)
>>> for i in range(100):
...     m.observe({"price": float(i % 50), "list_price": 60.0, "currency": "EUR",
...                "price_ts": 0}, ts=0)
>>> r = {q.field: q for q in m.report("fq", 0)}
>>> r["price"].observed, r["price"].out_of_range, round(r["price"].psi, 3)
(100, 0, 0.0)
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any

from features.events import DriftAlert, FeatureQuality, event_doc
from features.registry import FeatureView

EPS = 1e-4


def psi(reference: list[float], current: list[float], bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference`` (decile bins)."""
    ref = sorted(reference)
    edges = sorted({ref[int(len(ref) * i / bins)] for i in range(1, bins)})

    def hist(values: list[float]) -> list[float]:
        counts = [0] * (len(edges) + 1)
        for v in values:
            counts[bisect.bisect_right(edges, v)] += 1
        return [max(EPS, c / len(values)) for c in counts]

    r, c = hist(reference), hist(current)
    return sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c, strict=True))


class _FieldStats:
    __slots__ = ("observed", "missing", "out_of_range", "stale", "reference", "current")

    def __init__(self, window: int) -> None:
        self.observed = self.missing = self.out_of_range = self.stale = 0
        self.reference: list[float] = []
        self.current: deque[float] = deque(maxlen=window)


class ViewMonitor:
    def __init__(self, view: FeatureView, reference_size: int = 1000, window: int = 1000) -> None:
        self.view = view
        self.ref_size = reference_size
        self.numeric = [f for f in view.fields if f.dtype in ("int", "float")]
        self.others = [f.name for f in view.fields if f.dtype not in ("int", "float")]
        self.stats = {f.name: _FieldStats(window) for f in view.fields}
        # timestamps move forward by construction: their PSI would always read as drift
        self.times = {f.name for f in view.fields
                      if f.name in (view.as_of_field, "as_of") or f.name.endswith("_ts")}
        self.reports = 0

    def observe(self, row: dict[str, Any], ts: int) -> None:
        v = self.view
        stale = False
        if v.staleness_s is not None and v.as_of_field:
            as_of = row.get(v.as_of_field)
            stale = isinstance(as_of, int) and ts - as_of > v.staleness_s * 1000
        for f in self.numeric:
            st = self.stats[f.name]
            st.observed += 1
            x = row.get(f.name)
            if x is None or (isinstance(x, float) and math.isnan(x)):
                st.missing += 1
                continue
            if (f.min is not None and x < f.min) or (f.max is not None and x > f.max):
                st.out_of_range += 1
            if stale:
                st.stale += 1
            if len(st.reference) < self.ref_size:
                st.reference.append(float(x))
            else:
                st.current.append(float(x))
        for name in self.others:
            st = self.stats[name]
            st.observed += 1
            if row.get(name) in (None, ""):
                st.missing += 1
            elif stale:
                st.stale += 1

    def report(self, id_prefix: str, ts: int) -> list[FeatureQuality]:
        """One record per field for the period since the last report; counts then reset."""
        self.reports += 1
        out = []
        for name, st in self.stats.items():
            drift = None
            if (name not in self.times and len(st.reference) >= self.ref_size
                    and len(st.current) >= self.ref_size // 2):
                drift = round(psi(st.reference, list(st.current)), 6)
            out.append(FeatureQuality(
                id=f"{id_prefix}:{self.view.store_prefix}:{name}:{self.reports}", ts=ts,
                view=self.view.store_prefix, field=name, observed=st.observed,
                missing=st.missing, out_of_range=st.out_of_range, stale=st.stale, psi=drift,
                reference_size=len(st.reference)))
            st.observed = st.missing = st.out_of_range = st.stale = 0
        return out


class PsiAlerts:
    """Drift alerts from the quality reports: a field whose PSI exceeds its threshold
    (``thresholds["<view>.<field>"]``, else ``thresholds["default"]``, 0.25: the usual
    mark of a significant shift) in ``confirm`` reports in a row is a ``drift_alert``
    (action ``none``: a report); it is ``recovered`` once its PSI is below half the
    threshold. Plain data (kept in the quality step's state, so it recovers with it).

    >>> a = PsiAlerts({"default": 0.25}, confirm=2)
    >>> q = lambda psi, n: FeatureQuality(id=f"fq:{n}", ts=n, view="v1", field="x",
    ...                                   observed=9, missing=0, out_of_range=0,
    ...                                   stale=0, psi=psi)
    >>> [d["action"] for n, p in enumerate((0.3, 0.4, 0.5, 0.2, 0.1))
    ...  for d in a.observe([q(p, n)])]
    ['none', 'recovered']
    """

    def __init__(self, thresholds: dict[str, float] | None = None, confirm: int = 2) -> None:
        self.thresholds = {"default": 0.25, **(thresholds or {})}
        self.confirm = max(1, confirm)
        self.above: dict[str, int] = {}  # field -> reports in a row above its threshold
        self.alerted: set[str] = set()

    def observe(self, reports: list[FeatureQuality]) -> list[dict[str, Any]]:
        """The alert documents (``DriftAlert``) the reports raise."""
        out: list[dict[str, Any]] = []
        for q in reports:
            if q.psi is None:
                continue
            name = f"{q.view}.{q.field}"
            bound = self.thresholds.get(name, self.thresholds["default"])
            n = self.above[name] = self.above.get(name, 0) + 1 if q.psi > bound else 0
            if name not in self.alerted and n >= self.confirm:
                self.alerted.add(name)
                action, threshold = "none", bound
            elif name in self.alerted and q.psi < bound / 2:
                self.alerted.discard(name)
                action, threshold = "recovered", bound / 2
            else:
                continue
            out.append(event_doc(DriftAlert, id=f"drift:psi:{q.id}"[:128], ts=q.ts,
                                 monitor=f"psi:{name}"[:128], subject=name[:128],
                                 detector="psi", statistic=q.psi, threshold=threshold,
                                 action=action, window=q.reference_size))
        return out
