"""Erasure is complete and exact whatever the interleaving: property tests over random
sequences of user events, affinity hints and one erasure, through the Python fold and the
native shard alike.

- nothing of an event at or before the erasure's time survives it, wherever in the sequence
  the erasure arrives (events of the erased user that arrive later are dropped, counted as
  late events with the erasure as reason);
- events after the erasure's time are a new start for the user;
- other users, including one whose id extends the erased one (``alice/x``), keep everything.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.definitions import USER_AFFINITY, USER_RECENCY
from features.events import LateEvent
from features.interactions import AffinityHint, UserEvent
from features.native import available, native_user_fold
from features.store import StorePurge
from features.user_features import UserFold, session_key

USERS = ("alice", "alice/x", "bob")
DAY = 86_400_000


def _event(user: str, i: int, ts: int, sku: str) -> UserEvent:
    return UserEvent(user, "page_view", ts, f"{user}-{i}", f"s{ts // 3_600_000}",
                     ((sku, 1, 10.0),), "")


@st.composite
def _sequences(draw):
    n = draw(st.integers(min_value=1, max_value=40))
    items = []
    for i in range(n):
        user = draw(st.sampled_from(USERS))
        ts = draw(st.integers(min_value=0, max_value=DAY))
        sku = draw(st.sampled_from(["A", "B", "C"]))
        items.append(_event(user, i, ts, sku))
        if draw(st.booleans()):  # its catalog facts, from the item step, some time later
            items.append(AffinityHint(user, "page_view", ts, f"{user}-{i}", "bikes", "acme",
                                      "<10", ()))
    erase_ts = draw(st.integers(min_value=0, max_value=DAY))
    at = draw(st.integers(min_value=0, max_value=len(items)))
    items.insert(at, ("alice", "erase", erase_ts, "erase-1"))
    return items, at, erase_ts


def _run(fold, items: list) -> tuple[list, dict]:
    """A shard's work: the fold's outputs, then every user's rows at the end."""
    if hasattr(fold, "new_shard"):
        shard = fold.new_shard()
        out = list(shard.apply(items, False)) + list(shard.flush())
    else:
        states: dict = {}
        out = []
        for x in items:
            st_ = states.setdefault(x[0], fold.new())
            out += fold.apply(st_, x)
        for user in sorted(states):
            out += fold.rows(states[user], user)
    rows: dict = {}
    for w in out:
        if type(w).__name__ == "StoreWrite" and w.entity == "user":
            rows.setdefault(w.key, {}).update({f"{w.view}.{k}": v for k, v in w.fields.items()})
    return out, rows


FOLDS = [pytest.param(lambda: UserFold(allowed_lateness_ms=10 * DAY), id="python")]
if available():
    FOLDS.append(pytest.param(lambda: native_user_fold(allowed_lateness_ms=10 * DAY),
                              id="native"))


@pytest.mark.parametrize("make_fold", FOLDS)
@settings(max_examples=400, deadline=None, derandomize=True)
@given(case=_sequences())
def test_erasure_holds_whatever_the_interleaving(make_fold, case):
    items, at, erase_ts = case
    out, rows = _run(make_fold(), items)
    events = [x for x in items if type(x) is UserEvent]
    alice_after = [x for x in items[at + 1:] if type(x) is UserEvent and x.user_id == "alice"
                   and x.ts > erase_ts]
    # the purges are exact: alice's keys, never alice/x's sessions
    purges = [p for p in out if isinstance(p, StorePurge)]
    assert {(p.entity, p.key, p.prefix) for p in purges} == {
        ("user", "alice", False), ("feed", "alice", False), ("session", "alice/", True)}
    assert not session_key("alice/x", "s1").startswith("alice/")
    # what alice has afterwards comes only from her inputs after the erasure's time
    alice = rows.get("alice", {})
    assert alice.get(USER_RECENCY.column("n_events"), 0) == len(alice_after)
    hints_after = [x for x in items[at + 1:] if type(x) is AffinityHint
                   and x.user_id == "alice" and x.ts > erase_ts]
    assert bool(alice.get(USER_AFFINITY.column("top_categories"))) == bool(hints_after)
    dropped = [e for e in out if isinstance(e, LateEvent) and e.key == "alice"]
    assert all("erasure" in e.reason for e in dropped)
    assert len(dropped) == sum(1 for x in items[at + 1:] if type(x) is UserEvent
                               and x.user_id == "alice" and x.ts <= erase_ts)
    # everyone else keeps every event
    for user in ("alice/x", "bob"):
        n = sum(1 for x in events if x.user_id == user)
        assert rows.get(user, {}).get(USER_RECENCY.column("n_events"), 0) == n


def test_late_events_name_users_by_pseudonym(tmp_path):
    import json
    import uuid

    from connectors.file_sink import read_channel
    from flows.main import RunConfig, run
    from flows.settings import Settings

    ev = {"type": "page_view", "session_id": "s1", "sku": "A", "user_id": "U-raw-42"}
    lines = [json.dumps({**ev, "event_id": "e1", "ts": 10 * DAY}),
             json.dumps({**ev, "event_id": "e2", "ts": DAY})]  # 9 days late
    src = tmp_path / "e.jsonl"
    src.write_text("\n".join(lines) + "\n")
    run(RunConfig(inputs=[str(src)], output=str(tmp_path / "o"),
                  store=f"memory://{uuid.uuid4().hex}",
                  settings=Settings(_env_file=None, progress_every_s=0)))
    late = read_channel(tmp_path / "o", "late_events")
    assert sorted(json.loads(x)["entity"] for x in late) == ["item", "user"]
    assert not [x for x in late if b"U-raw-42" in x]
