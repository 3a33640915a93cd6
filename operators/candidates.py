"""Candidate step: items worth putting in a user's feed, from the user's features."""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Stream

from operators.features import UserFeatures

Candidates = tuple[UserFeatures, list[tuple[str, float]]]


def candidates(step_id: str, feats: Stream, limit: int = 50) -> Stream:
    """KeyedStream[UserFeatures | ERASED] → KeyedStream[(UserFeatures, candidates) | ERASED]."""

    def pick(f: UserFeatures | str) -> Candidates | str:
        if isinstance(f, str):
            return f
        bought = set(f.purchased)
        return f, [(s, w) for s, w in f.interests if s not in bought][:limit]

    return op.map_value(step_id, feats, pick)
