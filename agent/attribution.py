"""Outcome attribution in event time: which served feed items the user then acted on.

Every feed sent is a set of impressions (decision id, event time, the items in order). A
later behaviour event of the same user on one of those items, within the window of its
type (views and clicks 30 min, cart adds 1 h, orders 24 h by default), makes that item a
positive example of the newest feed that showed it (last touch); once an impression's
longest window has closed in the user's event time, its items never acted on become
negatives (``window_closed``). A user who keeps coming back gets feed after feed: an
impression pushed out of the newest ``max_pending`` ones closes then, its items never acted
on and not shown again in a newer pending feed becoming negatives (``superseded``: the user
moved on without them). At most ``max_negatives`` negatives per impression, drawn evenly
over its positions (a generator seeded by the decision id, so a replay draws the same):
the negatives' positions are those of the impressions, and a learner that reads
them sees how an item's chance falls with its rank (taking the first positions, or the
items above a positive, would teach it that the items ranked first are the ones passed
over). Windows close only when the user comes back (event time is per user here): a user
who never returns leaves no negatives. Each
example is emitted once, with a deterministic id, so a replay after recovery repeats it.
The state is the user's pending impressions (a few, bounded), kept with the user's other
decision state, so it recovers with it. An impression may carry the ranker's features of its
items as they were served (packed as half floats, 2 bytes a value); its examples then carry
them too, for the learner (``agent.learner``): features logged at serving time, not
recomputed from later facts.

>>> a = Attribution({"click": 60_000}, max_pending=3, max_negatives=2)
>>> pending = a.served((), "feed:u:e1", 1_000, ("A", "B", "C"))
>>> pending, ex = a.outcome(pending, "click", ("B",), 2_000)
>>> [(e.sku, e.label, e.position, e.outcome) for e in ex]
[('B', 1, 1, 'click')]
>>> pending, ex = a.outcome(pending, "click", ("Z",), 100_000)   # the window has closed
>>> [(e.sku, e.label, e.outcome) for e in ex], pending
([('A', 0, 'window_closed'), ('C', 0, 'window_closed')], ())
>>> pending, ex = a.serve((), "feed:u:e2", 1_000, ("A", "B"))
>>> pending, ex = a.serve(pending, "feed:u:e3", 2_000, ("B", "C"))
>>> pending, ex = a.serve(pending, "feed:u:e4", 3_000, ("C", "D"))
>>> pending, ex = a.serve(pending, "feed:u:e5", 4_000, ("D", "E"))  # e2 is pushed out
>>> [(e.decision_id, e.sku, e.label, e.outcome, e.ts) for e in ex]
[('feed:u:e2', 'A', 0, 'superseded', 4000)]
"""

from __future__ import annotations

import random
import struct
from typing import Any, NamedTuple

DEFAULT_WINDOWS_MS = {"page_view": 1_800_000, "click": 1_800_000, "add_to_cart": 3_600_000,
                      "order": 86_400_000}

# (decision id, event time, items in order, positions already attributed[, features of the
# items packed by ``pack_rows``])
Impression = tuple[Any, ...]


def pack_rows(rows: list[tuple[float, ...]]) -> bytes:
    """Feature rows of equal length as half floats (the impression's state stays small)."""
    flat = [v for r in rows for v in r]
    width = len(rows[0]) if rows else 0
    return bytes([width]) + struct.pack(f"<{len(flat)}e", *flat)


def unpack_row(packed: bytes, i: int) -> tuple[float, ...]:
    """The ``i``-th row of ``pack_rows``.

    >>> unpack_row(pack_rows([(1.0, 0.5), (0.25, 2.0)]), 1)
    (0.25, 2.0)
    """
    width = packed[0]
    return struct.unpack_from(f"<{width}e", packed, 1 + 2 * width * i)


def _row(packed: bytes | None, i: int) -> tuple[float, ...] | None:
    return unpack_row(packed, i) if packed else None


def sample_positions(decision_id: str, positions: list[int], k: int) -> list[int]:
    """``k`` of ``positions`` drawn evenly (a generator seeded by the decision id: the same
    ones on every replay and in every process), in order.

    >>> sample_positions("feed:u:e1", [0, 1, 2, 3, 4, 5], 6)
    [0, 1, 2, 3, 4, 5]
    >>> sample_positions("feed:u:e1", list(range(10)), 3) == sample_positions(
    ...     "feed:u:e1", list(range(10)), 3)
    True
    """
    if len(positions) <= k:
        return positions
    return sorted(random.Random(decision_id).sample(positions, k))  # str seed: SHA-512


class Example(NamedTuple):
    decision_id: str
    sku: str
    position: int
    label: int  # 1: acted on within its window; 0: not, by the window's close
    outcome: str  # the event type that acted, or "window_closed" / "superseded"
    ts: int  # event time of the outcome (or of the close, for a negative)
    delay_ms: int
    features: tuple[float, ...] | None = None  # the ranker's, as served


class Attribution:
    def __init__(self, windows_ms: dict[str, int] | None = None, max_pending: int = 3,
                 max_negatives: int = 5) -> None:
        self.windows = dict(DEFAULT_WINDOWS_MS if windows_ms is None else windows_ms)
        self.longest = max(self.windows.values(), default=0)
        self.max_pending, self.max_negatives = max_pending, max_negatives

    def served(self, pending: tuple[Impression, ...], decision_id: str, ts: int,
               items: tuple[str, ...], features: bytes | None = None
               ) -> tuple[Impression, ...]:
        """``serve`` without the examples."""
        return self.serve(pending, decision_id, ts, items, features)[0]

    def serve(self, pending: tuple[Impression, ...], decision_id: str, ts: int,
              items: tuple[str, ...], features: bytes | None = None
              ) -> tuple[tuple[Impression, ...], list[Example]]:
        """A feed sent: its impressions wait for outcomes; the oldest beyond
        ``max_pending`` close (``superseded`` negatives). ``features``: the items' feature
        rows (``pack_rows``), in order."""
        if not items:
            return pending, []
        imp: Impression = (decision_id, ts, items, frozenset()) if features is None else \
            (decision_id, ts, items, frozenset(), features)
        every = (*pending, imp)
        cut = max(0, len(every) - self.max_pending)
        kept = every[cut:]
        out: list[Example] = []
        if cut:
            still = {sku for k in kept for sku in k[2]}  # shown again: still pending there
            for old in every[:cut]:
                did, t0, shown, done = old[:4]
                packed = old[4] if len(old) > 4 else None
                negatives = sample_positions(
                    did, [i for i, sku in enumerate(shown) if i not in done and sku not in still],
                    self.max_negatives)
                out += [Example(did, shown[i], i, 0, "superseded", ts, ts - t0,
                                _row(packed, i)) for i in negatives]
        return kept, out

    def outcome(self, pending: tuple[Impression, ...], kind: str, skus: tuple[str, ...],
                ts: int) -> tuple[tuple[Impression, ...], list[Example]]:
        """The user's next event (any type: its time closes windows; a behaviour event on a
        served item within its window is a positive)."""
        out: list[Example] = []
        keep: list[Impression] = []
        window = self.windows.get(kind)
        credited: set[str] = set()  # last touch: the newest impression of an item gets it
        for imp in reversed(pending):
            did, t0, items, done = imp[:4]
            packed = imp[4] if len(imp) > 4 else None
            if window is not None and skus and 0 <= ts - t0 <= window:
                hit = set(done)
                for i, sku in enumerate(items):
                    if i not in hit and sku in skus and sku not in credited:
                        hit.add(i)
                        credited.add(sku)
                        out.append(Example(did, sku, i, 1, kind, ts, ts - t0,
                                           _row(packed, i)))
                done = frozenset(hit)
            if ts - t0 > self.longest:  # every window of it has closed
                negatives = sample_positions(did, [i for i in range(len(items)) if i not in done],
                                             self.max_negatives)
                closed = t0 + self.longest
                out += [Example(did, items[i], i, 0, "window_closed", closed, self.longest,
                                _row(packed, i)) for i in negatives]
            else:
                keep.append((did, t0, items, done) if packed is None
                            else (did, t0, items, done, packed))
        return tuple(reversed(keep)), out
