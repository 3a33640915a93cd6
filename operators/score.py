"""Score step: rank candidates (thin-flow heuristic from ``features.score``)."""

from __future__ import annotations

from bytewax.dataflow import Stream

from agent.feed import Retrieved
from features.score import rank
from operators.chunks import chunk_map


def score(step_id: str, cands: Stream, k: int) -> Stream:
    """chunks of (UserFeatures, candidates, retrieval) → the same, candidates ranked and cut
    to the top ``k``."""

    def top(c: Retrieved) -> Retrieved:
        f, items, found = c
        return f, rank(items, k), found

    return chunk_map(step_id, cands, top)
