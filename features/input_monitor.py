"""Drift of the input itself: event rate, mix of event types, dead-letter and late-event
shares, per bucket of event time.

The validate step counts its inputs per (bucket, type) (``kind_counts``); dead letters and
late events count towards the newest bucket seen (a dead letter has no trustworthy event
time). A bucket closes once events ``grace`` buckets past its end have been seen (buckets
with no events at all close as empty ones). Each closed bucket is judged over the last
``window`` buckets against a *reference*, the ``reference`` buckets before them (frozen
while an alert is active, for at most ``reference`` buckets: a change that lasts longer is
the new normal and recovers as the reference fills with it). The reference is the median
bucket (of the totals, and per type), so a burst or a bulk load among its buckets does not
move it; catalog events are loaded in bulk and are left out of the rate and the mix:

- ``input:rate``: events per bucket, alert outside ``[ref / rate_factor, ref * rate_factor]``,
  recovered inside ``[ref / √rate_factor, ref * √rate_factor]``;
- ``input:mix``: PSI of the shares of event types against the reference's (``mix_psi``);
- ``input:dead_letters``, ``input:late_events``: their share of the inputs above
  ``max(share_min, share_factor × reference share)``.

Every closed bucket is also reported (for the drift dashboard's input plot) as a
``feature_quality`` document of view ``input``, field ``events``: ``observed`` the bucket's
events, ``missing`` its dead letters, ``stale`` its late events and, once judged, ``psi`` the
mix's PSI against the reference.

An alert needs ``confirm`` closed buckets in a row past its bound and recovers below half
of it (the rate: inside the inner band). Event time, not wall time: an input that stops
completely closes no bucket (watch it with the consumer lag instead). Plain data, kept in
the flow's state. Alerts are ``drift_alert`` documents (action ``none``: a report).

>>> m = InputMonitor(bucket_ms=1000, reference=5, window=1, confirm=1)
>>> alerts = []
>>> for b in range(20):
...     n = 10 if b < 12 else 2  # a source loses 80% of its events
...     alerts += m.observe([(b * 1000, "page_view", n)])
>>> [(a["monitor"], a["action"]) for a in alerts if a["type"] == "drift_alert"]
[('input:rate', 'none')]
>>> [a["observed"] for a in alerts if a["type"] == "feature_quality"][10:14]
[10, 10, 2, 2]
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from features.events import DriftAlert, FeatureQuality, event_doc

EPS = 1e-4
DEAD, LATE = "_dead", "_late"  # counters kept beside the event types in a bucket
ITEM_ONLY = frozenset({"catalog", "inventory", "price"})  # item inputs with no user input
BULK = ("catalog",)  # loaded in bulk (a catalog load or reload): not in the rate or the mix

DEFAULTS: dict[str, float] = {
    "bucket_s": 60, "grace": 2, "reference": 30, "min_reference": 10, "window": 3,
    "confirm": 2, "rate_factor": 3.0, "mix_psi": 0.25, "share_min": 0.05,
    "share_factor": 3.0,
}


def kind_counts(items: list[Any], users: list[Any], bucket_ms: int) -> list[tuple[int, str, int]]:
    """``(bucket start, event type, count)`` of one chunk of item inputs and one of user
    inputs (tuples or native batches, see ``features.ingest``): every user event once, and
    the item inputs that have no user (catalog, inventory, price)."""
    c: Counter[tuple[int, str]] = Counter()
    for x in items:
        if isinstance(x, tuple):
            if x[1] in ITEM_ONLY:
                c[(x[2] - x[2] % bucket_ms, x[1])] += 1
        else:
            for b, k, n in x.kind_counts(bucket_ms):  # native: item-only types already
                c[(b, k)] += n
    for x in users:
        if isinstance(x, tuple):
            c[(x[2] - x[2] % bucket_ms, x[1])] += 1
        else:
            for b, k, n in x.kind_counts(bucket_ms):
                c[(b, k)] += n
    return [(b, k, n) for (b, k), n in sorted(c.items())]


def _psi(ref: Counter[str], cur: Counter[str]) -> float:
    rn, cn = sum(ref.values()), sum(cur.values())
    if not rn or not cn:
        return 0.0
    out = 0.0
    for k in sorted(set(ref) | set(cur)):
        r, c = max(EPS, ref[k] / rn), max(EPS, cur[k] / cn)
        out += (c - r) * math.log(c / r)
    return out


class _Detector:
    __slots__ = ("name", "above", "alerted", "reference")

    def __init__(self, name: str) -> None:
        self.name = name
        self.above = 0
        self.alerted = False
        self.reference = 0.0


class InputMonitor:
    def __init__(self, bucket_ms: int = 60_000, grace: int = 2, reference: int = 30,
                 min_reference: int = 10, window: int = 3, confirm: int = 2,
                 rate_factor: float = 3.0, mix_psi: float = 0.25, share_min: float = 0.05,
                 share_factor: float = 3.0, bulk: tuple[str, ...] = BULK) -> None:
        self.bucket_ms, self.grace = max(1, int(bucket_ms)), max(0, int(grace))
        self.min_reference = max(1, min(int(min_reference), int(reference)))
        self.confirm = max(1, int(confirm))
        self.rate_factor, self.mix_psi = max(1.0001, rate_factor), mix_psi
        self.share_min, self.share_factor = share_min, share_factor
        self.skip = frozenset((DEAD, LATE, *bulk))
        self.alerted_for = 0  # closed buckets since an alert froze the reference
        self.open: dict[int, Counter[str]] = {}
        self.pending: Counter[str] = Counter()  # dead letters / late before any event
        self.newest: int | None = None  # newest bucket seen
        self.next_close: int | None = None  # the next bucket to close
        self.recent: deque[Counter[str]] = deque(maxlen=max(1, int(window)))
        self.history: deque[Counter[str]] = deque(maxlen=max(1, int(reference)))
        self.detectors = {n: _Detector(n) for n in ("rate", "mix", "dead_letters",
                                                    "late_events")}
        self.stragglers = 0  # events counted after their bucket had closed

    @classmethod
    def from_settings(cls, cfg: dict[str, float]) -> InputMonitor:
        c = {**DEFAULTS, **cfg}
        return cls(bucket_ms=int(c["bucket_s"] * 1000), grace=int(c["grace"]),
                   reference=int(c["reference"]), min_reference=int(c["min_reference"]),
                   window=int(c["window"]), confirm=int(c["confirm"]),
                   rate_factor=c["rate_factor"], mix_psi=c["mix_psi"],
                   share_min=c["share_min"], share_factor=c["share_factor"])

    def observe(self, counts: list[tuple[int, str, int]], dead: int = 0, late: int = 0
                ) -> list[dict[str, Any]]:
        """Counts of one chunk (``kind_counts``), dead letters and late events; the alert
        and report documents of the buckets this closes (``type``: ``drift_alert`` or
        ``feature_quality``)."""
        for b, kind, n in counts:
            if self.next_close is not None and b < self.next_close:
                self.stragglers += n
                continue
            self.open.setdefault(b, Counter())[kind] += n
            if self.newest is None or b > self.newest:
                self.newest = b
        if self.newest is None:
            self.pending[DEAD] += dead
            self.pending[LATE] += late
            return []
        if self.next_close is None:
            self.next_close = min(self.open)
        head = self.open.setdefault(self.newest, Counter())
        head[DEAD] += dead + self.pending.pop(DEAD, 0)
        head[LATE] += late + self.pending.pop(LATE, 0)
        out: list[dict[str, Any]] = []
        bm = self.bucket_ms
        last = self.newest - self.grace * bm - 1  # the newest bucket start this may close
        # a jump in event time (a quiet night, a far-off timestamp) leaves empty buckets:
        # once the reference and the window hold only empty ones, closing another changes
        # nothing (no rate, no mix, no shares: every alert has recovered), so the rest of
        # the run is skipped, not closed one by one (a year is 525,600 minutes)
        settle = self._settle()
        while self.next_close <= last:
            b = self.next_close
            if b not in self.open:
                nxt = min(self.open)  # the newest bucket is always open
                empties = (min(nxt, last + bm) - b) // bm
                if empties > settle:
                    for i in range(settle):
                        out += self._close(b + i * bm, Counter())
                    self.next_close = b + empties * bm
                    continue
            out += self._close(b, self.open.pop(b, Counter()))
            self.next_close = b + bm
        return out

    def _settle(self) -> int:
        """Empty buckets after which closing one more changes nothing: an input that stops
        is a rate alert (within the window and the confirmations), the reference stays
        frozen at most its length, then fills with empty buckets, and the alert recovers."""
        h, r = self.history.maxlen or 0, self.recent.maxlen or 0
        return 2 * h + r + self.confirm + 4

    def _close(self, b: int, bucket: Counter[str]) -> list[dict[str, Any]]:
        # the reference: the buckets that left the window, frozen while an alert is active
        # for at most as many buckets as it holds (then a lasting change is the new normal)
        alerted = any(d.alerted for d in self.detectors.values())
        self.alerted_for = self.alerted_for + 1 if alerted else 0
        frozen = alerted and self.alerted_for <= (self.history.maxlen or 0)
        if len(self.recent) == self.recent.maxlen and not frozen:
            self.history.append(self.recent[0])
        self.recent.append(bucket)
        judged = len(self.history) >= self.min_reference and len(self.recent) == \
            self.recent.maxlen
        out, psi = self._judge(b) if judged else ([], None)
        events = sum(n for k, n in bucket.items() if k not in (DEAD, LATE))
        return [event_doc(FeatureQuality, id=f"quality:input:events:{b}", ts=b + self.bucket_ms,
                          view="input", field="events", observed=events,
                          missing=bucket[DEAD], out_of_range=0, stale=bucket[LATE],
                          psi=psi, reference_size=len(self.history)), *out]

    def _judge(self, b: int) -> tuple[list[dict[str, Any]], float]:
        # the reference is the median bucket (per type, and of the totals): a bulk load or
        # a burst among its buckets does not move it
        cur, ref = _events(self.recent, self.skip), _median_mix(self.history, self.skip)
        rate = sum(cur.values()) / len(self.recent)
        ref_rate = statistics.median(sum(_events((h,), self.skip).values())
                                     for h in self.history)
        out = []
        f = self.rate_factor
        ratio = rate / ref_rate if ref_rate else 1.0
        far = max(ratio, 1 / ratio) if ratio > 0 else math.inf
        out += self._step("rate", b, "rate_ratio", ratio, far > f, far < math.sqrt(f),
                          f if ratio >= 1 else 1 / f, ref_rate)
        psi = _psi(ref, cur)
        out += self._step("mix", b, "psi", psi, psi > self.mix_psi, psi < self.mix_psi / 2,
                          self.mix_psi, 0.0)
        for name, key in (("dead_letters", DEAD), ("late_events", LATE)):
            share = _share(self.recent, key)
            ref_share = _share(self.history, key)
            bound = max(self.share_min, self.share_factor * ref_share)
            out += self._step(name, b, "share", share, share > bound, share < bound / 2,
                              bound, ref_share)
        return out, round(min(psi, 1e6), 6) if math.isfinite(psi) else 1e6

    def _step(self, name: str, b: int, detector: str, stat: float, above: bool,
              back: bool, threshold: float, reference: float) -> list[dict[str, Any]]:
        d = self.detectors[name]
        d.above = d.above + 1 if above else 0
        if not d.alerted and d.above >= self.confirm:
            d.alerted, d.reference, action = True, reference, "none"
        elif d.alerted and back:
            d.alerted, action = False, "recovered"
            reference = d.reference
        else:
            return []
        stat = min(stat, 1e12) if math.isfinite(stat) else 1e12
        return [event_doc(DriftAlert, id=f"drift:input:{name}:{b}:{action}", ts=b + self.bucket_ms,
                          monitor=f"input:{name}", subject="input", detector=detector,
                          statistic=round(stat, 6), threshold=round(threshold, 6),
                          reference=round(reference, 6), action=action,
                          window=len(self.recent))]


def _median_mix(buckets: deque[Counter[str]], skip: frozenset[str]) -> Counter[str]:
    kinds = sorted({k for b in buckets for k in b if k not in skip})
    return Counter({k: statistics.median(b[k] for b in buckets) for k in kinds})


def _events(buckets: Iterable[Counter[str]], skip: frozenset[str]) -> Counter[str]:
    c: Counter[str] = Counter()
    for b in buckets:
        c.update({k: n for k, n in b.items() if k not in skip})
    return c


def _share(buckets: deque[Counter[str]], key: str) -> float:
    extra = sum(b[key] for b in buckets)
    events = sum(n for b in buckets for k, n in b.items() if k not in (DEAD, LATE))
    total = events + (extra if key == DEAD else 0)  # late events are among the events
    return extra / total if total else 0.0
