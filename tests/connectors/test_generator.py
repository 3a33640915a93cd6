import json
from collections import Counter

from connectors.generator import GenConfig, Generator
from features.validate import RawRecord, validate_record


def _records(**kw):
    return list(Generator(GenConfig(**kw)).records())


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = _records(seed=7, users=50, items=40, events=500)
    assert a == _records(seed=7, users=50, items=40, events=500)
    assert a != _records(seed=8, users=50, items=40, events=500)


def test_marked_malformed_records_fail_validation_and_the_rest_pass():
    recs = _records(seed=3, users=100, items=60, events=3000, malformed_rate=0.05)
    bad = good = 0
    for i, r in enumerate(recs):
        events, dead = validate_record(RawRecord("gen", 0, i, r.value, 0))
        if r.malformed:
            assert dead and not events, r.value
            bad += 1
        else:
            assert events and not dead, dead
            good += 1
    assert bad > 50 and good > 2500


def test_catalog_has_configurable_products_and_traffic_types():
    recs = _records(seed=1, users=200, items=100, events=5000, malformed_rate=0.0)
    types = {r.type for r in recs}
    assert {"catalog", "inventory", "page_view", "click", "add_to_cart", "order", "consent",
            "price"} <= types
    configurable = [json.loads(r.value) for r in recs if r.type == "catalog"
                    and json.loads(r.value)["option_groups"]]
    assert configurable and configurable[0]["compatibility"]
    behaviour = sum(r.type in ("page_view", "click", "add_to_cart", "order") for r in recs)
    assert behaviour == 5000


def test_taste_shift_changes_category_mix():
    recs = _records(seed=5, users=300, items=200, events=20_000, malformed_rate=0.0,
                    shift_at=0.5)
    cat = {json.loads(r.value)["sku"]: json.loads(r.value)["category_path"][0]
           for r in recs if r.type == "catalog"}
    views = [cat[json.loads(r.value)["sku"]] for r in recs if r.type == "page_view"]
    half = len(views) // 2

    def share(vs):
        return {c: vs.count(c) / len(vs) for c in set(cat.values())}

    before, after = share(views[:half]), share(views[half:])
    assert max(abs(before[c] - after[c]) for c in before) > 0.05


def test_the_second_shift_turns_popular_items_unpopular_and_is_off_by_default():
    kw = dict(seed=6, users=300, items=200, events=20_000, malformed_rate=0.0, shift_at=1.0)
    plain, flipped = _records(**kw), _records(**kw, flip_at=0.5)
    assert plain == _records(**kw, flip_at=1.0)  # off: the same bytes as before it existed

    def views(recs):
        return [json.loads(r.value)["sku"] for r in recs if r.type == "page_view"]

    v_plain, v_flip = views(plain), views(flipped)
    half = len(v_flip) // 2
    top = {s for s, _ in Counter(v_plain).most_common(20)}  # the popular items

    def share(vs):
        return sum(s in top for s in vs) / len(vs)

    assert abs(share(v_flip[:half]) - share(v_plain[:half])) < 0.05  # the same before
    assert share(v_flip[half:]) < share(v_plain[half:]) / 3  # out of favour after


def test_the_sessions_profile_looks_like_public_session_data():
    """Revisits (about a third of later views go back to an item of the session), short
    sessions (median 2-4 views) and a steep item popularity (Zipf), seeded."""
    import json
    import statistics

    from connectors.generator import GenConfig, Generator

    recs = list(Generator(GenConfig(seed=4, events=20_000, malformed_rate=0,
                                    profile="sessions")).records())
    sessions: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for r in recs:
        if r.type in ("page_view", "click"):
            d = json.loads(r.value)
            sessions.setdefault(d["session_id"], []).append(d["sku"])
            counts[d["sku"]] = counts.get(d["sku"], 0) + 1
    later = [(s[i], s[:i]) for s in sessions.values() for i in range(1, len(s))]
    revisits = sum(1 for sku, before in later if sku in before) / len(later)
    assert 0.28 < revisits < 0.40, revisits
    assert 2 <= statistics.median(len(s) for s in sessions.values()) <= 4
    top = sorted(counts.values(), reverse=True)
    assert sum(top[:len(top) // 20]) / sum(top) > 0.25  # the top 5% of items: over a quarter
    default = list(Generator(GenConfig(seed=4, events=2_000, malformed_rate=0)).records())
    again = list(Generator(GenConfig(seed=4, events=2_000, malformed_rate=0,
                                     profile="default")).records())
    assert default == again  # the default traffic is unchanged by the knobs
