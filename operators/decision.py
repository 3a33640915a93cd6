"""Decision step: a feed update per user whenever the ranked feed changes.

Keyed state holds the last feed a user was sent, so unchanged feeds are not re-sent.
Ids are deterministic (``feed:<user>:<trigger event id>``): a replay after recovery
produces the same id for the same decision.
"""

from __future__ import annotations

from typing import NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.events import FeedUpdate, Outgoing, ScoredItem, outgoing
from features.score import MODEL_VERSION
from features.store import StoreOp, StorePurge, StoreWrite
from operators.candidates import Candidates

FEED_CHANNEL = "feed_updates"


class FeedStreams(NamedTuple):
    outgoing: Stream[Outgoing]
    store_ops: Stream[StoreOp]


def feed_decision(step_id: str, ranked: Stream, ttl_s: int) -> FeedStreams:
    def decide(last: tuple[str, ...] | None, c: Candidates | str):
        if isinstance(c, str):  # erased user: forget the feed, purge it from the store
            return None, "erase"
        f, items = c
        skus = tuple(s for s, _ in items)
        if skus == last or not skus:
            return last, None
        return skus, (f, items)

    decided = op.stateful_map(f"{step_id}_dedupe", ranked, decide)
    changed = op.filter(f"{step_id}_changed", decided, lambda kv: kv[1] is not None)

    def to_ops(kv) -> list[Outgoing | StoreOp]:
        user, d = kv
        if d == "erase":
            return [StorePurge("feed", user)]
        f, items = d
        fu = FeedUpdate(
            id=f"feed:{user}:{f.event_id}", ts=f.ts, user_id=user,
            items=[ScoredItem(sku=s, score=round(w, 6)) for s, w in items],
            trigger_event_id=f.event_id, model_version=MODEL_VERSION,
        )
        encoded = ",".join(f"{s}:{w:.4f}" for s, w in items)
        return [outgoing(FEED_CHANNEL, user, fu),
                StoreWrite("feed", user, {"items": encoded, "id": fu.id,
                                          "model_version": MODEL_VERSION}, f.ts, ttl_s)]

    both = op.flat_map(f"{step_id}_emit", changed, to_ops)
    split = op.branch(f"{step_id}_split", both, lambda x: isinstance(x, Outgoing))
    return FeedStreams(split.trues, split.falses)  # type: ignore[arg-type]
