"""Candidate step: the items worth judging for each user event (``agent.feed.retrieve``),
a chunk at a time: each retrieval tool is one governed call per chunk, and with
``prefetch`` the rows the chunk's decisions will read are fetched first (one store round
trip per entity, not one per tool call)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import bytewax.operators as op
from bytewax.dataflow import Stream

from agent.feed import retrieve
from agent.tools import ToolRuntime
from features.facts import as_of, cut
from features.user_features import UserFeatures


class Prefetch(Protocol):
    """Warms the caches the tools and the decision step read (``agent.policy_gate``)."""

    def prefetch(self, feats: list[UserFeatures]) -> None: ...

    def prefetch_facts(self, skus: list[str]) -> None: ...


def candidates(step_id: str, feats: Stream, runtime: Callable[[], ToolRuntime],
               limit: int = 50, native: bool = True, prefetch: Prefetch | None = None,
               lists: bool = False, exclude_seen: bool = False,
               tick_ms: int | None = None, knn: bool = False) -> Stream:
    """chunks of UserFeatures → chunks of (UserFeatures, candidates, Retrieval); erasures
    pass through with no candidates. ``lists``: keep each source's scores (for the learned
    ranker's features); ``exclude_seen``: leave the user's recent items out too;
    ``tick_ms``: read the facts as of each trigger's tick (``features.facts``), the
    triggers of one tick together."""

    def run(chunks: list) -> list:
        batch = [f for c in chunks for f in c]
        if tick_ms is None:
            out = find(batch)
            return [out] if out else []
        out = []
        i = 0
        while i < len(batch):  # runs of triggers in the same tick (they come in time order)
            t = cut(batch[i].ts, tick_ms)
            j = i + 1
            while j < len(batch) and cut(batch[j].ts, tick_ms) == t:
                j += 1
            with as_of(t):
                out += find(batch[i:j])
            i = j
        return [out] if out else []

    def find(batch: list) -> list:
        if prefetch is not None:
            prefetch.prefetch(batch)
        out = retrieve(batch, runtime(), limit, native, lists, exclude_seen, knn)
        if prefetch is not None:
            prefetch.prefetch_facts([s for _, items, _ in out for s, _ in items]
                                    + [f.skus[0] for f in batch if f.skus])
        return out

    return op.flat_map_batch(step_id, feats, run)
