"""Outcome attribution in event time: which served feed items the user then acted on.

Every feed sent is a set of impressions (decision id, event time, the items in order). A
later behaviour event of the same user on one of those items, within the window of its
type (views and clicks 30 min, cart adds 1 h, orders 24 h by default), makes that item a
positive example of the newest feed that showed it (last touch); once an impression's
longest window has closed in the user's event time, its items never acted on become
negatives (the first ``max_negatives`` positions). Windows close only when the user comes
back (event time is per user here): a user who never returns leaves no negatives. Each
example is emitted once, with a deterministic id, so a replay after recovery repeats it.
The state is the user's pending impressions (a few, bounded), kept with the user's other
decision state, so it recovers with it.

>>> a = Attribution({"click": 60_000}, max_pending=3, max_negatives=2)
>>> pending = a.served((), "feed:u:e1", 1_000, ("A", "B", "C"))
>>> pending, ex = a.outcome(pending, "click", ("B",), 2_000)
>>> [(e.sku, e.label, e.position, e.delay_ms) for e in ex]
[('B', 1, 1, 1000)]
>>> pending, ex = a.outcome(pending, "click", ("Z",), 100_000)   # the window has closed
>>> [(e.sku, e.label, e.outcome) for e in ex], pending
([('A', 0, 'window_closed'), ('C', 0, 'window_closed')], ())
"""

from __future__ import annotations

from typing import NamedTuple

DEFAULT_WINDOWS_MS = {"page_view": 1_800_000, "click": 1_800_000, "add_to_cart": 3_600_000,
                      "order": 86_400_000}

# (decision id, event time, items in order, positions already attributed)
Impression = tuple[str, int, tuple[str, ...], frozenset[int]]


class Example(NamedTuple):
    decision_id: str
    sku: str
    position: int
    label: int  # 1: acted on within its window; 0: not, by the window's close
    outcome: str  # the event type that acted, or "window_closed"
    ts: int  # event time of the outcome (or of the close, for a negative)
    delay_ms: int


class Attribution:
    def __init__(self, windows_ms: dict[str, int] | None = None, max_pending: int = 3,
                 max_negatives: int = 5) -> None:
        self.windows = dict(DEFAULT_WINDOWS_MS if windows_ms is None else windows_ms)
        self.longest = max(self.windows.values(), default=0)
        self.max_pending, self.max_negatives = max_pending, max_negatives

    def served(self, pending: tuple[Impression, ...], decision_id: str, ts: int,
               items: tuple[str, ...]) -> tuple[Impression, ...]:
        """A feed sent: its impressions wait for outcomes (the oldest are dropped beyond
        ``max_pending``, without examples: too many feeds in a row say little each)."""
        if not items:
            return pending
        return (*pending, (decision_id, ts, items, frozenset()))[-self.max_pending:]

    def outcome(self, pending: tuple[Impression, ...], kind: str, skus: tuple[str, ...],
                ts: int) -> tuple[tuple[Impression, ...], list[Example]]:
        """The user's next event (any type: its time closes windows; a behaviour event on a
        served item within its window is a positive)."""
        out: list[Example] = []
        keep: list[Impression] = []
        window = self.windows.get(kind)
        credited: set[str] = set()  # last touch: the newest impression of an item gets it
        for did, t0, items, done in reversed(pending):
            if window is not None and skus and 0 <= ts - t0 <= window:
                hit = set(done)
                for i, sku in enumerate(items):
                    if i not in hit and sku in skus and sku not in credited:
                        hit.add(i)
                        credited.add(sku)
                        out.append(Example(did, sku, i, 1, kind, ts, ts - t0))
                done = frozenset(hit)
            if ts - t0 > self.longest:  # every window of it has closed
                negatives = [i for i in range(len(items)) if i not in done]
                closed = t0 + self.longest
                out += [Example(did, items[i], i, 0, "window_closed", closed, self.longest)
                        for i in negatives[:self.max_negatives]]
            else:
                keep.append((did, t0, items, done))
        return tuple(reversed(keep)), out
