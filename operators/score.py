"""Score step: rank candidates (thin-flow heuristic from ``features.score``)."""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.score import rank
from operators.candidates import Candidates


def score(step_id: str, cands: Stream, k: int) -> Stream:
    """KeyedStream[(UserFeatures, candidates)] → KeyedStream[(UserFeatures, top-k ranked)]."""

    def top(c: Candidates | str) -> Candidates | str:
        if isinstance(c, str):
            return c
        f, items = c
        return f, rank(items, k)

    return op.map_value(step_id, cands, top)
