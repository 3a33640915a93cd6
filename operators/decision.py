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
from features.store import StoreOp, StoreWrite
from operators.candidates import Candidates

FEED_CHANNEL = "feed_updates"
FEED_VIEW = "feed_v1"


class FeedStreams(NamedTuple):
    outgoing: Stream[Outgoing]
    store_ops: Stream[StoreOp]


def feed_decision(step_id: str, ranked: Stream, ttl_s: int) -> FeedStreams:
    keyed = op.key_on(f"{step_id}_key", ranked, lambda c: c[0].user_id)

    def decide(last: tuple[str, ...] | None, c: Candidates):
        f, items = c
        if f.erased:  # forget the user's last feed (the store purge came from the features)
            return None, None
        skus = tuple(s for s, _ in items)
        if skus == last or not skus:
            return last, None
        return skus, c

    decided = op.stateful_map(f"{step_id}_dedupe", keyed, decide)
    changed = op.filter_map(f"{step_id}_changed", decided, lambda kv: kv[1])

    def to_ops(c: Candidates) -> list[Outgoing | StoreOp]:
        f, items = c
        user = f.user_id
        fu = FeedUpdate(
            id=f"feed:{user}:{f.event_id}", ts=f.ts, user_id=user,
            items=[ScoredItem(sku=s, score=round(w, 6)) for s, w in items],
            trigger_event_id=f.event_id, model_version=MODEL_VERSION,
        )
        encoded = ",".join(f"{s}:{w:.4f}" for s, w in items)
        return [outgoing(FEED_CHANNEL, user, fu),
                StoreWrite("feed", user, FEED_VIEW, {"items": encoded, "id": fu.id,
                                                     "model_version": MODEL_VERSION},
                           f.ts, ttl_s)]

    both = op.flat_map(f"{step_id}_emit", changed, to_ops)
    split = op.branch(f"{step_id}_split", both, lambda x: isinstance(x, Outgoing))
    return FeedStreams(split.trues, split.falses)  # type: ignore[arg-type]
