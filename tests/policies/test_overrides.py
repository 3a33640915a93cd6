"""The override set's index (by user, shared) answers exactly what a scan of every active
override would, for any sequence of overrides, clears and disputes."""

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.overrides import OverrideSet

USERS, SEGMENTS, SKUS = ["u1", "u2", "u3"], ["bikes", "shoes"], ["A", "B", "C", "D"]

change = st.one_of(
    st.tuples(st.just("override"), st.sampled_from(["o1", "o2", "o3", "o4"]),
              st.sampled_from(["suppress", "pin", "clear"]),
              st.sampled_from(["user", "segment", "all"]), st.sampled_from(USERS + SEGMENTS),
              st.lists(st.sampled_from(SKUS), min_size=1, max_size=3),
              st.integers(0, 100), st.one_of(st.none(), st.integers(0, 200))),
    st.tuples(st.just("dispute"), st.sampled_from(USERS), st.sampled_from(["e1", "e2"]),
              st.lists(st.sampled_from(SKUS), min_size=1, max_size=2), st.integers(0, 100)))


def _scan(s: OverrideSet, user: str, segment: str, ts: int):
    sup, pins, applied = set(), [], []
    for o in sorted(s.active.values(), key=lambda o: o.version):
        if ts < o.from_ts or (o.until_ts is not None and ts > o.until_ts):
            continue
        if (o.scope == "user" and o.target != user) or (o.scope == "segment"
                                                        and o.target != segment):
            continue
        applied.append(f"{o.id}@{o.version}")
        if o.mode == "suppress":
            sup.update(o.skus)
        else:
            pins.extend(x for x in o.skus if x not in pins)
    return frozenset(sup), tuple(x for x in pins if x not in sup), tuple(applied)


@settings(max_examples=300, deadline=None)
@given(st.lists(change, max_size=12), st.sampled_from(USERS), st.sampled_from(SEGMENTS),
       st.integers(0, 250))
def test_the_index_answers_like_a_scan(changes, user, segment, ts):
    s = OverrideSet()
    for c in changes:
        if c[0] == "dispute":
            _, u, ev, skus, at = c
            s.dispute(f"feed:{u}:{ev}", tuple(skus), at, "ops", None)
        else:
            _, oid, mode, scope, target, skus, at, until = c
            s.apply(oid, mode, scope, target, tuple(skus), at, until, "ops")
    assert s.for_user(user, segment, ts) == _scan(s, user, segment, ts)
    assert s.version == len(changes)
