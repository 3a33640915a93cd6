"""Candidate items for a user's feed (thin flow: the user's own recent interests).

>>> from features.user_profile import UserProfile, apply
>>> p = apply(apply(UserProfile(), "page_view", ("A",), 0), "order", ("B",), 1)
>>> [(s, round(w, 3)) for s, w in recent_interest_candidates(p, now=1, limit=10)]
[('A', 1.0)]
"""

from __future__ import annotations

from features.user_profile import UserProfile, top_interests


def recent_interest_candidates(p: UserProfile, now: int, limit: int) -> list[tuple[str, float]]:
    """Items the user showed interest in and has not bought, with decayed interest."""
    bought = set(p.purchased)
    return [(s, w) for s, w in top_interests(p, now, limit + len(bought)) if s not in bought][
        :limit]
