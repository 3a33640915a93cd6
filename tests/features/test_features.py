"""Unit and property tests of the pure feature folds."""

import pickle
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from features.covisitation import CAPACITY, CovisFold
from features.decay import DecayedMap, strongest
from features.events import LateEvent
from features.interactions import AffinityHint, UserEvent
from features.item_features import ItemFold, ItemState, price_row
from features.store import StorePurge, StoreWrite
from features.user_features import UserFold
from features.windows import RINGS, WindowCounts

H = 3_600_000


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0.1, 10), st.integers(0, 400 * H)),
                min_size=1, max_size=40), st.randoms())
@settings(max_examples=200, deadline=None)
def test_decayed_map_is_order_independent(evs, rnd):
    def fold(seq):
        m = DecayedMap(H)
        for k, amount, ts in seq:
            m.add(k, amount, ts)
        return {k: m.value(k, 400 * H) for k in "abc"}

    shuffled = list(evs)
    rnd.shuffle(shuffled)
    a, b = fold(evs), fold(shuffled)
    for k in "abc":
        assert abs(a[k] - b[k]) <= 1e-9 * max(1.0, a[k])


def test_decayed_map_survives_years_of_event_time():
    m = DecayedMap(H)
    for day in range(0, 3 * 365):
        m.add("x", 1.0, day * 24 * H)  # 2**(24*1095) would overflow without rebasing
    v = m.value("x", 1094 * 24 * H)
    assert 1.0 <= v < 1.0 + 1e-6  # only the last event is still visible after 24 half-lives


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 8 * 24 * H)), max_size=60),
       st.integers(0, 9 * 24 * H))
@settings(max_examples=200, deadline=None)
def test_window_counts_match_brute_force(evs, as_of):
    w = WindowCounts(retain_extra_ms=10 * 24 * H)
    for t, ts in evs:
        w.add(t, ts)
    for name, (size, n) in RINGS.items():
        for t in range(3):
            brute = sum(1 for tt, ts in evs if tt == t and as_of // size - n < ts // size
                        <= as_of // size)
            assert w.count(t, name, as_of) == brute


def _ev(kind, sku, ts, user="u1", session="s1", lines=None):
    return UserEvent(user, kind, ts, f"{user}-{kind}-{sku}-{ts}", session,
                     lines or ((sku, 1, 10.0),), "o" if kind == "order" else "")


def _rows(fold, s, user="u1"):
    return {w.view: w.fields for w in fold.rows(s, user)}


def test_user_lateness_is_applied_within_bound_and_reported_beyond():
    f = UserFold(allowed_lateness_ms=H)
    s = f.new()
    f.apply(s, _ev("page_view", "A", 10 * H))
    assert f.apply(s, _ev("page_view", "B", 10 * H - H // 2)) == [] or True  # within: applied
    late = [o for o in f.apply(s, _ev("page_view", "C", 8 * H)) if isinstance(o, LateEvent)]
    assert len(late) == 1 and late[0].lateness_ms == 2 * H and late[0].entity == "user"
    rows = _rows(f, s)
    assert rows["user_recency_v1"]["n_events"] == 2
    assert rows["user_activity_v1"]["views_24h"] == 2
    assert rows["user_recency_v1"]["last_items"] == "A,B"


@given(st.randoms())
@settings(max_examples=50, deadline=None)
def test_user_counts_and_affinities_do_not_depend_on_arrival_order(rnd):
    base = [_ev(rnd.choice(["page_view", "click", "add_to_cart", "order"]), f"S{rnd.randrange(8)}",
                rnd.randrange(0, 6 * H)) for _ in range(30)]
    hints = [AffinityHint("u1", e.kind, e.ts, e.event_id, f"c{hash(e.lines[0][0]) % 3}", "b",
                          "10-25", ("color=red",)) for e in base]
    items = base + hints

    def run(seq):
        f = UserFold(allowed_lateness_ms=100 * H)
        s = f.new()
        for x in seq:
            f.apply(s, x)
        rows = _rows(f, s)
        return rows["user_activity_v1"], rows["user_affinity_v1"], rows.get("user_purchases_v1")

    shuffled = list(items)
    rnd.shuffle(shuffled)
    a, b = run(items), run(shuffled)
    assert a[0] == b[0]
    assert a[2] is None or (a[2]["n_orders"], a[2]["total_spent"]) == (
        b[2]["n_orders"], b[2]["total_spent"])
    for k in ("top_categories", "top_price_bands"):  # same weights to 4 decimals
        assert sorted(a[1][k].split(",")) == sorted(b[1][k].split(","))


def test_user_state_stays_small_for_a_heavy_user():
    f = UserFold(allowed_lateness_ms=H)
    s = f.new()
    rnd = random.Random(1)
    for i in range(5000):  # 5000 events over 30 days, 500 items, 200 sessions
        ts = i * (30 * 24 * H // 5000)
        kind = rnd.choice(["page_view"] * 6 + ["click", "add_to_cart", "order"])
        f.apply(s, _ev(kind, f"SKU{rnd.randrange(500):06d}", ts, session=f"s{i // 25}"))
        f.apply(s, AffinityHint("u1", kind, ts, "e", f"cat{rnd.randrange(30)}/sub",
                                f"brand{rnd.randrange(40)}", "25-50",
                                (f"color={rnd.randrange(6)}", f"size={rnd.randrange(4)}")))
        f.rows(s, "u1")
    size = len(pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL))
    assert size < 2048, size


def test_sessions_intent_and_covisitation_pairs():
    f = UserFold(allowed_lateness_ms=H)
    s = f.new()
    f.apply(s, _ev("page_view", "A", 0))
    out = f.apply(s, _ev("page_view", "B", 60_000))
    assert ("A", "B", "vv", 60_000) in out and ("B", "A", "vv", 60_000) in out
    out = f.apply(s, _ev("add_to_cart", "C", 120_000))
    assert ("A", "C", "vb", 120_000) in out and ("C", "A", "vb", 120_000) not in out
    sess = _rows(f, s)["session_state_v1"]
    assert sess["intent_stage"] == "exploring" or sess["intent_stage"] == "considering"
    assert sess["cart_adds"] == 1 and sess["dwell_s"] == 120.0
    out = f.apply(s, _ev("page_view", "D", 120_000 + 31 * 60_000))  # gap > 30 min: new session
    assert not [p for p in out if type(p) is tuple]
    assert _rows(f, s)["session_state_v1"]["items_seen"] == 1


def test_erasure_purges_user_sessions_and_feed():
    f = UserFold(allowed_lateness_ms=H, decision_inputs=True)
    s = f.new()
    f.apply(s, _ev("page_view", "A", 0, session="s1"))
    f.apply(s, _ev("page_view", "B", 40 * 60_000, session="s2"))
    out = f.apply(s, ("u1", "erase", 50 * 60_000, "erase-1"))
    purges = {(p.entity, p.key) for p in out if isinstance(p, StorePurge)}
    assert purges == {("user", "u1"), ("feed", "u1"), ("session", "u1/")}  # all its sessions
    assert f.rows(s, "u1") == [] and s.n_events == 0  # only the tombstone is left
    # an event from before the erasure, arriving after it, is dropped (and accounted for)
    late = f.apply(s, _ev("page_view", "C", 45 * 60_000, session="s2"))
    assert [type(x).__name__ for x in late] == ["LateEvent"] and "erasure" in late[0].reason
    assert f.apply(s, AffinityHint("u1", "page_view", 45 * 60_000, "h", "bikes", "acme", "<10",
                                   ()))\
        == [] and f.rows(s, "u1") == []
    f.apply(s, _ev("page_view", "D", 51 * 60_000, session="s3"))  # a new start is kept
    assert _rows(f, s)["user_recency_v1"]["n_events"] == 1


def test_erasure_does_not_touch_a_user_whose_id_extends_the_erased_one():
    from features.user_features import session_key, session_prefix

    assert not session_key("alice/x", "s1").startswith(session_prefix("alice"))
    assert not session_key("alice%2Fx", "s1").startswith(session_prefix("alice/x"))
    assert session_key("alice", "s1").startswith(session_prefix("alice"))


def test_item_stock_price_popularity_and_lateness():
    f = ItemFold(allowed_lateness_ms=H)
    s = ItemState()
    f.apply(s, ("A", "catalog", 0, "bikes", "acme", 100.0, "EUR", (), 0, "", ""))
    f.apply(s, ("A", "inventory", 5 * H, "north", 10, 2))
    f.apply(s, ("A", "inventory", 4 * H, "north", 99, 0))  # older update: ignored
    f.apply(s, ("A", "inventory", 5 * H, "south", 5, 0))
    f.apply(s, ("A", "price", 6 * H, 90.0, 100.0, "EUR"))
    for i in range(10):
        f.apply(s, ("A", "page_view", 6 * H + i, "u", f"e{i}", "s", 1, 0.0))
    f.apply(s, ("A", "order", 6 * H + 20, "u", "o1", "s", 2, 90.0))
    late = f.apply(s, ("A", "page_view", 4 * H, "u", "old", "s", 1, 0.0))
    assert [type(x).__name__ for x in late] == ["LateEvent", "AffinityHint"]
    rows = {w.view: w.fields for w in f.rows(s, "A") if type(w) is StoreWrite}
    rows["item_price_v1"] = price_row(s)  # price rows go out at once, on the price event
    assert rows["item_stock_v1"]["available"] == 13 and rows["item_stock_v1"]["on_hand"] == 15
    assert 0 < rows["item_stock_v1"]["days_of_cover"] < 100_000
    assert rows["item_price_v1"]["price"] == 90.0
    pop = rows["item_popularity_v1"]
    assert pop["n_events"] == 11 and abs(pop["conversion_rate"] - 0.2) < 0.01
    assert pop["trending"] > 1  # all views in the last hour: rising


def test_covisitation_is_bounded():
    f = CovisFold()
    s = f.new()
    for i in range(1000):
        f.apply(s, ("A", f"N{i}", "vv" if i % 2 else "vb", i))
    for i in range(50):
        f.apply(s, ("A", "HOT", "vv", 1000 + i))
    assert len(s.vv.w) <= CAPACITY and len(s.vb.w) <= CAPACITY
    row = f.rows(s, "A")[0].fields
    assert row["view_view"].startswith("HOT:")
    assert len(row["view_view"].split(",")) == 10


def test_affinity_rows_before_any_user_event_do_not_overflow():
    f = UserFold(allowed_lateness_ms=H)
    s = f.new()  # hints can reach the user step before the user's own event
    f.apply(s, AffinityHint("u1", "page_view", 1_700_000_000_000, "e", "bikes", "b", "<10", ()))
    rows = _rows(f, s)
    assert rows["user_affinity_v1"]["top_categories"].startswith("bikes:")


def test_category_lists_are_bounded_newest_and_strongest_first():
    from features.category_features import CAPACITY, NEWEST, CategoryFold, CategoryInput, K

    f = CategoryFold()
    s = f.new()
    for i in range(200):  # 200 arrivals, then trend values rising with i
        f.apply(s, CategoryInput("c", "new", 1_000 + i, f"N{i:03d}", 0.0))
        f.apply(s, CategoryInput("c", "trend", 1_000 + i, f"T{i:03d}", float(i)))
    f.apply(s, CategoryInput("c", "new", 5, "N000", 0.0))  # seen already: ignored
    assert len(s.new) == NEWEST and len(s.trend.w) <= CAPACITY + 8
    row = f.rows(s, "c")[0].fields
    assert row["new_arrivals"].split(",")[:2] == ["N199", "N198"]
    trending = [x.split(":")[0] for x in row["trending"].split(",")]
    assert trending[:2] == ["T199", "T198"] and len(trending) == K
    assert f.rows(s, "c") == []  # nothing changed since


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text("abcXYZ", min_size=1, max_size=3),
                       st.sampled_from([0.0, -0.0, 1.0, 2.5, 2.5000000000000004])
                       | st.floats(0, 1e6), max_size=40),
       st.integers(0, 45))
def test_strongest_is_the_key_then_weight_sorted_top(weights, k):
    """One sort by weight unless a tie in the head: the same as sorting by key, then by
    weight (stable), whatever ties there are."""
    assert strongest(weights, k) == sorted(sorted(weights.items()), key=lambda kv: kv[1],
                                           reverse=True)[:k]
