"""Score step: rank candidates (thin-flow heuristic from ``features.score``)."""

from __future__ import annotations

from bytewax.dataflow import Stream

from features.score import rank
from operators.candidates import Candidates
from operators.chunks import chunk_map


def score(step_id: str, cands: Stream, k: int) -> Stream:
    """chunks of (UserFeatures, candidates) → chunks of (UserFeatures, top-k ranked)."""

    def top(c: Candidates) -> Candidates:
        f, items = c
        return f, rank(items, k)

    return chunk_map(step_id, cands, top)
