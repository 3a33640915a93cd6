"""Candidate step: items worth putting in a user's feed, from the user's features."""

from __future__ import annotations

from bytewax.dataflow import Stream

from features.user_features import UserFeatures
from operators.chunks import chunk_map

Candidates = tuple[UserFeatures, list[tuple[str, float]]]


def candidates(step_id: str, feats: Stream, limit: int = 50) -> Stream:
    """chunks of UserFeatures → chunks of (UserFeatures, candidates): recent interests
    not bought."""

    def pick(f: UserFeatures) -> Candidates:
        bought = set(f.purchased)
        return f, [(s, w) for s, w in f.interests if s not in bought][:limit]

    return chunk_map(step_id, feats, pick)
