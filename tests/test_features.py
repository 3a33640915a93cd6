from hypothesis import given, settings
from hypothesis import strategies as st

from features import item_popularity, user_profile
from features.candidates import recent_interest_candidates
from features.decay import add, value_at
from features.score import rank

HL = 3_600_000

events = st.lists(st.tuples(st.floats(0.1, 10), st.integers(0, 10 * HL)), min_size=1,
                  max_size=30)


@given(events, st.randoms())
@settings(max_examples=200, deadline=None)
def test_decayed_counter_is_order_independent(evs, rnd):
    def fold(seq):
        c = (0.0, 0)
        for amount, ts in seq:
            c = add(c, amount, ts, HL)
        return value_at(c, 10 * HL, HL)

    shuffled = list(evs)
    rnd.shuffle(shuffled)
    a, b = fold(evs), fold(shuffled)
    assert abs(a - b) <= 1e-9 * max(1.0, abs(a))


def test_decay_halves_per_half_life():
    c = add((0.0, 0), 8.0, 0, HL)
    assert abs(value_at(c, 3 * HL, HL) - 1.0) < 1e-12
    assert value_at(c, -5, HL) == 8.0  # never grows into the past


def test_user_profile_is_bounded():
    p = user_profile.UserProfile()
    for i in range(500):
        p = user_profile.apply(p, "order" if i % 5 == 0 else "page_view", (f"S{i}",), i * 1000)
    assert len(p.interest) <= user_profile.MAX_ITEMS
    assert len(p.purchased) <= user_profile.MAX_PURCHASED
    assert p.n_events == 500 and p.last_ts == 499_000


def test_candidates_exclude_purchases_and_rank_is_deterministic():
    p = user_profile.UserProfile()
    for sku, kind in [("A", "page_view"), ("B", "add_to_cart"), ("C", "page_view"),
                      ("B", "order")]:
        p = user_profile.apply(p, kind, (sku,), 1000)
    cands = recent_interest_candidates(p, 1000, 10)
    assert "B" not in [s for s, _ in cands]
    assert rank(cands, 5) == [("A", 1.0), ("C", 1.0)]


def test_item_popularity_counts_and_weights():
    s = item_popularity.ItemPopularity()
    s = item_popularity.apply(s, "page_view", 1, 0)
    s = item_popularity.apply(s, "add_to_cart", 2, 0)
    s = item_popularity.apply(s, "order", 1, 0)
    assert s.n_events == 3
    assert item_popularity.score(s, 0) == 1 + 3 * 2 + 5 * 1
    row = item_popularity.feature_row(s, item_popularity.HALF_LIFE_MS)
    assert abs(row["popularity"] - 6.0) < 1e-9
