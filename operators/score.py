"""Score step: rank candidates (thin-flow heuristic from ``features.score``)."""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.score import rank
from operators.candidates import Candidates


def score(step_id: str, cands: Stream, k: int) -> Stream:
    """Stream[(UserFeatures, candidates)] → Stream[(UserFeatures, top-k ranked)]."""

    def top(c: Candidates) -> Candidates:
        f, items = c
        return f, rank(items, k)

    return op.map(step_id, cands, top)
