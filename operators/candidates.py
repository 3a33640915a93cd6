"""Candidate step: items worth putting in a user's feed, from the user's features."""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.user_features import UserFeatures

Candidates = tuple[UserFeatures, list[tuple[str, float]]]


def candidates(step_id: str, feats: Stream, limit: int = 50) -> Stream:
    """Stream[UserFeatures] → Stream[(UserFeatures, candidates)]: recent interests not bought."""

    def pick(f: UserFeatures) -> Candidates:
        bought = set(f.purchased)
        return f, [(s, w) for s, w in f.interests if s not in bought][:limit]

    return op.map(step_id, feats, pick)
