"""Feature steps: per-user profile and per-item popularity in Bytewax keyed state.

State lives in ``stateful_map`` (snapshotted with recovery); each step also emits the
feature rows that mirror the state into the online store.
"""

from __future__ import annotations

from typing import NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from features import item_popularity, user_profile
from features.events import Control, Inbound
from features.interactions import (
    ItemInteraction,
    UserInteraction,
    item_interactions,
    user_interaction,
)
from features.store import StoreOp, StorePurge, StoreWrite

ERASED = "__erased__"


class UserFeatures(NamedTuple):
    """What the decision path needs from a user's features after one event."""

    event_id: str
    ts: int
    interests: list[tuple[str, float]]  # strongest first, decayed to ts
    purchased: list[str]
    row: dict[str, str | int | float]


class UserStreams(NamedTuple):
    features: Stream  # KeyedStream[UserFeatures | ERASED]
    store_ops: Stream[StoreOp]


def _user_or_erase(ev: Inbound) -> UserInteraction | None:
    if isinstance(ev, Control) and ev.action == "erase_user" and ev.user_id:
        return ev.user_id, ERASED, (), ev.ts, ev.event_id
    return user_interaction(ev)


def user_features(step_id: str, events: Stream[Inbound], ttl_s: int,
                  max_interests: int = 20) -> UserStreams:
    inter = op.filter_map(f"{step_id}_extract", events, _user_or_erase)
    keyed = op.key_on(f"{step_id}_key", inter, lambda x: x[0])

    def fold(state: user_profile.UserProfile | None, x: UserInteraction):
        _, kind, skus, ts, event_id = x
        if kind == ERASED:
            return None, ERASED
        p = user_profile.apply(state or user_profile.UserProfile(), kind, skus, ts)
        now = max(ts, p.last_ts)
        return p, UserFeatures(event_id, ts, user_profile.top_interests(p, now, max_interests),
                               list(p.purchased), user_profile.feature_row(p, now))

    feats = op.stateful_map(f"{step_id}_profile", keyed, fold)

    def to_store(kv: tuple[str, UserFeatures | str]) -> StoreOp:
        user, f = kv
        if isinstance(f, str):
            return StorePurge("user", user)
        return StoreWrite("user", user, f.row, int(f.row["last_ts"]), ttl_s)

    return UserStreams(feats, op.map(f"{step_id}_store", feats, to_store))


def item_features(step_id: str, events: Stream[Inbound], ttl_s: int) -> Stream[StoreOp]:
    inter = op.flat_map(f"{step_id}_extract", events, item_interactions)
    keyed = op.key_on(f"{step_id}_key", inter, lambda x: x[0])

    def fold(state: item_popularity.ItemPopularity | None, x: ItemInteraction):
        _, kind, qty, ts = x
        s = item_popularity.apply(state or item_popularity.ItemPopularity(), kind, qty, ts)
        return s, (item_popularity.feature_row(s, s.last_ts), s.last_ts)

    rows = op.stateful_map(f"{step_id}_popularity", keyed, fold)
    return op.map(f"{step_id}_store", rows,
                  lambda kv: StoreWrite("item", kv[0], kv[1][0], kv[1][1], ttl_s))
