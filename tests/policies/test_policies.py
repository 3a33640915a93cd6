"""Policy packs, rule types, conflict order, lifecycle, privacy."""

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.configuration import ConfigSpace, config_problems
from policies.evaluate import Candidates, UserContext, compile_pack, render
from policies.lifecycle import PolicyEngine, canary_bucket, record_fields
from policies.pack import PackError, load_pack
from policies.privacy import pseudonymize

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = (ROOT / "policies" / "packs" / "default.toml").read_text()
NOW = 1_700_000_000_000
USER = UserContext("u1", frozenset({"personalization", "marketing"}), age=30, region="FR")


def pack(rules: str, version: str = "1", name: str = "t"):
    return load_pack(f'pack = "{name}"\nversion = "{version}"\n{rules}', f"{name}.toml")


def item(sku="A", category="bikes/road", brand="acme", price=100.0, available=10, **kw):
    return dict(sku=sku, category=category, brand=brand, price=price, available=available, **kw)


def test_default_pack_is_realistic_and_valid():
    p = load_pack(DEFAULT, "default.toml")
    assert len(p.rules) >= 30
    assert {r.type for r in p.rules} == {"consent", "stock", "price", "frequency_cap",
                                        "exposure", "compliance", "configuration",
                                        "purchased"}


@pytest.mark.parametrize("text,where", [
    ('pack = "x"\nversion = "1"\n[[rules]]\nid = "a"\ntype = "stock"\n'
     'params = { min_available = -1 }\n', "x.toml:3: rule 'a': min_available"),
    ('pack = "x"\nversion = "1"\n[[rules]]\nid = "a"\ntype = "stock"\n'
     '[[rules]]\nid = "a"\ntype = "stock"\n', "x.toml:6: rule 'a': duplicate rule id"),
    ('pack = "x"\nversion = "1"\n[[rules]]\nid = "a"\ntype = "price"\n'
     'params = { max_price = 5, surprise = 1 }\n', "x.toml:3: rule 'a': surprise"),
    ('pack = "x"\nversion = "1"\n[[rules\n', "x.toml:3: invalid TOML"),
    ('pack = "x"\nversion = "1"\n', "x.toml:1: a pack needs at least one [[rules]]"),
])
def test_bad_packs_are_refused_with_file_line_and_rule(text, where):
    with pytest.raises(PackError) as e:
        load_pack(text, "x.toml")
    assert str(e.value).startswith(where), str(e.value)


def test_consent_gates_personalization_and_marketing():
    cp = compile_pack(load_pack(DEFAULT))
    c = Candidates.of([item()])
    opted_out = UserContext("u2", frozenset(), age=30, region="FR")
    r = cp.evaluate(opted_out, "recommend", c, NOW)
    assert not r.personalized and not r.suppressed and r.allowed == [0]
    r = cp.evaluate(opted_out, "offer", c, NOW)
    assert r.suppressed and r.allowed == []
    assert any(v.reason == "consent_missing" and v.effect == "deny" for v in r.verdicts)
    unknown = UserContext("u3", None)
    assert not cp.evaluate(unknown, "recommend", c, NOW).personalized


def test_stock_rules_deny_unfulfillable_and_unknown():
    cp = compile_pack(load_pack(DEFAULT))
    c = Candidates.of([item("A", available=0), item("B", available=None), item("C", available=3),
                       item("D", available=9)])
    r = cp.evaluate(USER, "recommend", c, NOW)
    assert r.allowed == [2, 3]
    assert r.denied[0].reason == "out_of_stock" and r.denied[1].reason == "stock_unknown"
    r = cp.evaluate(USER, "offer", c, NOW)  # offers need a safety stock of 5
    assert r.allowed == [3]


def test_price_ceilings_floors_discounts_and_margin():
    cp = compile_pack(load_pack(DEFAULT))
    c = Candidates.of([
        item("A", category="toys/toys-1", price=300.0),  # above the toys ceiling (250)
        item("B", category="bikes/bikes-1", price=0.5),  # below the floor
        item("C", category="bikes/bikes-1", price=100.0, discount_pct=50.0, unit_cost=50.0),
        item("D", category="bikes/bikes-1", price=100.0, unit_cost=95.0, discount_pct=5.0),
        item("E", category="apparel/apparel-1", price=100.0, discount_pct=20.0, unit_cost=40.0),
    ])
    r = cp.evaluate(USER, "offer", c, NOW)
    assert r.denied[0].reason == "blocked_category"  # toys: no offers (priority 95 > 50)
    assert r.denied[1].reason == "below_min_price"
    assert r.discounts[2] == 15.0  # bikes max discount 15%, and margin holds at 15%
    assert r.denied[3].reason == "margin_too_low"  # cost 95 + 10% > price 100
    assert r.discounts[4] == 20.0 and 4 in r.allowed  # within apparel's 40%
    ceiling = compile_pack(load_pack(DEFAULT)).evaluate(USER, "recommend", c, NOW)
    assert ceiling.denied[0].reason == "above_max_price"
    clamp = [v for v in r.verdicts if v.subject == 2 and v.effect == "modify"]
    assert "reduced to the maximum 15.0%" in render(clamp[0])


def test_margin_clamps_a_discount_it_can_still_allow():
    cp = compile_pack(pack('[[rules]]\nid = "m"\ntype = "price"\nactions = ["offer"]\n'
                           'params = { min_margin_pct = 10.0 }\n'))
    r = cp.evaluate(USER, "offer", Candidates.of([item(price=100.0, unit_cost=80.0,
                                                       discount_pct=30.0)]), NOW)
    assert r.allowed == [0] and r.discounts[0] == 12.0  # 100 * 0.88 = 88 = 80 * 1.1


def test_frequency_caps_per_channel_and_window():
    cp = compile_pack(load_pack(DEFAULT))
    c = Candidates.of([item()])
    hour = 3_600_000
    recent = UserContext("u1", USER.purposes, 30, "FR", {"push": (NOW - 10 * 60_000,)})
    assert cp.evaluate(recent, "offer", c, NOW).suppressed  # 1 per hour
    spread = UserContext("u1", USER.purposes, 30, "FR",
                         {"push": (NOW - 2 * hour, NOW - 3 * hour, NOW - 4 * hour)})
    r = cp.evaluate(spread, "offer", c, NOW)
    assert r.suppressed and r.verdicts[0].rule == "cap-push-daily"
    old = UserContext("u1", USER.purposes, 30, "FR", {"push": (NOW - 2 * hour,)})
    assert not cp.evaluate(old, "offer", c, NOW).suppressed
    other_channel = UserContext("u1", USER.purposes, 30, "FR", {"email": (NOW - 1,)})
    assert not cp.evaluate(other_channel, "offer", c, NOW).suppressed


def test_purchased_items_are_denied_with_a_verdict_in_scope_only():
    bought = USER._replace(purchased=frozenset({"A", "C"}))
    c = Candidates.of([item("A"), item("B"), item("C", category="grocery/coffee")])
    r = compile_pack(load_pack(DEFAULT)).evaluate(bought, "recommend", c, NOW)
    assert r.allowed == [1]
    assert {i: r.denied[i].reason for i in (0, 2)} == {0: "already_purchased",
                                                       2: "already_purchased"}
    assert render(r.denied[0]) == "the user already bought this item"
    # not for offers, not for a user who bought nothing
    assert compile_pack(load_pack(DEFAULT)).evaluate(USER, "recommend", c, NOW).allowed == \
        [0, 1, 2]
    # scoped to durable goods: coffee comes back
    scoped = pack('[[rules]]\nid = "p"\ntype = "purchased"\nactions = ["recommend"]\n'
                  'params = { categories = ["bikes"] }\n')
    r = compile_pack(scoped).evaluate(bought, "recommend", c, NOW)
    assert r.allowed == [1, 2] and r.denied[0].rule == "p"


def test_compliance_age_region_and_blocked_categories():
    cp = compile_pack(load_pack(DEFAULT))
    c = Candidates.of([item("A", min_age=18), item("B", regions=("DE",)),
                       item("C", category="electronics/electronics-3"), item("D")])
    minor = UserContext("kid", USER.purposes, age=15, region="FR")
    r = cp.evaluate(minor, "recommend", c, NOW)
    assert r.allowed == [3]
    assert [r.denied[i].reason for i in range(3)] == ["age_restricted", "region_restricted",
                                                       "blocked_category"]
    unknown_age = UserContext("x", USER.purposes, age=None, region="DE")
    r = cp.evaluate(unknown_age, "recommend", c, NOW)
    assert 0 in r.denied and 1 in r.allowed


def test_exposure_brand_share_and_category_diversity():
    cp = compile_pack(load_pack(DEFAULT))
    rows = [item(f"S{i}", category=f"{'bikes' if i < 8 else 'home'}/x", brand="big"
                 if i < 6 else f"b{i}") for i in range(12)]
    rows.append(item("G", category="garden/x", brand="g"))
    c = Candidates.of(rows)
    r = cp.evaluate(USER, "recommend", c, NOW)
    chosen = cp.select(r, r.allowed, c, 10)
    brands = [c.brands[i] for i in chosen]
    assert brands.count("big") <= 3  # 30% of 10
    assert len({c.categories[i].split("/")[0] for i in chosen}) >= 3
    assert chosen == sorted(chosen)  # rank order kept
    assert any(v.reason == "brand_share" for v in r.verdicts)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["bikes/a", "bikes/b", "home/x", "garden", "toys/y"]),
                          st.sampled_from(["b1", "b2", "b3", "b4"])), max_size=30),
       st.integers(1, 12))
def test_select_keeps_rank_order_brand_caps_and_brings_in_categories(items, k):
    """Properties of the exposure selection (brand share 30%, at least 3 top-level
    categories): at most k distinct allowed items in rank order, never more of a brand than
    its share (a deny wins over diversity), no item refused for its brand in the list, and
    fewer than 3 categories only when no other category can come in: none left among the
    candidates, no chosen category with an item to spare, or every newcomer's brand full."""
    cp = compile_pack(load_pack(DEFAULT))
    c = Candidates.of([item(f"S{i}", category=cat, brand=b) for i, (cat, b) in enumerate(items)])
    r = cp.evaluate(USER, "recommend", c, NOW)
    chosen = cp.select(r, r.allowed, c, k)
    cap = max(1, int(0.3 * k))
    assert len(chosen) <= k and len(set(chosen)) == len(chosen)
    assert set(chosen) <= set(r.allowed) and chosen == sorted(chosen)  # rank = index here
    brands = [c.brands[i] for i in chosen]
    assert all(brands.count(b) <= cap for b in brands)
    refused = {v.subject for v in r.verdicts if v.reason == "brand_share"}
    assert not refused & set(chosen)
    tops = [cat.split("/")[0] for cat in c.categories]
    picked = [tops[i] for i in chosen]
    if len(set(picked)) < 3:
        newcomers = [i for i in r.allowed if tops[i] not in picked and i not in refused]
        assert (not newcomers or all(picked.count(t) == 1 for t in picked)
                or all(brands.count(c.brands[i]) >= cap for i in newcomers))
    greedy: list[int] = []  # the brand-capped list before any diversity swap
    for i in r.allowed:
        if [c.brands[j] for j in greedy].count(c.brands[i]) < cap:
            greedy.append(i)
    if {tops[i] for i in r.allowed} == {tops[i] for i in greedy[:k]}:  # nothing to bring in
        assert chosen == greedy[:k]


def test_configuration_validity():
    groups = {"frame": ["alu", "carbon"], "size": ["M", "XL"]}
    rules = [{"when": "size:XL", "requires": ["frame:alu"]}]
    assert config_problems({"frame": "carbon", "size": "XL"}, groups, rules, {}, {}) == (
        "size:XL requires frame:alu",)
    assert config_problems({"frame": "alu", "size": "XL"}, groups, rules,
                           {"frame:alu": "MAT-a"}, {"MAT-a": 3}) == ()
    cp = compile_pack(load_pack(DEFAULT))
    c = Candidates.of([item("A", config_problems=("size:XL requires frame:alu",)), item("B")])
    r = cp.evaluate(USER, "configure", c, NOW)
    assert r.allowed == [1] and r.denied[0].reason == "invalid_configuration"


_OPTION_IDS = st.sampled_from(["a", "b", "c"])


@st.composite
def _config_case(draw):
    groups = [{"group_id": f"g{g}", "options": [
        {"option_id": f"o{o}",
         **({"material_sku": f"M{draw(st.integers(0, 3))}"} if draw(st.booleans()) else {}),
         "attributes": {"k": draw(_OPTION_IDS)}} for o in range(draw(st.integers(1, 4)))]}
        for g in range(draw(st.integers(1, 3)))]
    ids = [f"{g['group_id']}:{o['option_id']}" for g in groups for o in g["options"]]
    compat = [{"when": draw(st.sampled_from(ids)),
               "requires": draw(st.lists(st.sampled_from(ids), max_size=1)),
               "excludes": draw(st.lists(st.sampled_from(ids), max_size=2))}
              for _ in range(draw(st.integers(0, 3)))]
    users = draw(st.lists(st.tuples(
        st.dictionaries(st.sampled_from(["k=a", "k=b", "k=c"]), st.sampled_from([0.0, 0.5, 2.0])),
        st.dictionaries(st.sampled_from(["M0", "M1", "M2", "M3"]),
                        st.sampled_from([None, 0, 1, 4]))), min_size=1, max_size=4))
    return groups, compat, users


@settings(max_examples=150, deadline=None)
@given(_config_case())
def test_config_space_picks_the_best_valid_combination_for_every_user(case):
    """One prepared space serves many users: each answer equals a fresh space's, is valid,
    and no valid combination scores higher."""
    groups, compat, users = case
    shared = ConfigSpace(groups, compat)
    names = {g["group_id"]: [o["option_id"] for o in g["options"]] for g in groups}
    mats = {f"{g['group_id']}:{o['option_id']}": o["material_sku"]
            for g in groups for o in g["options"] if "material_sku" in o}
    for affinity, stock in users:
        got = shared.best(affinity, stock)
        assert got == ConfigSpace(groups, compat).best(affinity, stock)
        valid = []
        for combo in itertools.product(*names.values()):
            choices = dict(zip(names, combo, strict=True))
            if not config_problems(choices, names, compat, mats, stock):
                valid.append(sum(affinity.get(f"k={o['attributes']['k']}", 0.0)
                                 for g in groups for o in g["options"]
                                 if choices[g["group_id"]] == o["option_id"]))
        if not valid:
            assert got is None
        else:
            choices, score = got
            assert not config_problems(choices, names, compat, mats, stock)
            assert score == pytest.approx(max(valid))


def test_deny_overrides_and_priority_picks_the_reported_reason():
    cp = compile_pack(pack('''
[[rules]]
id = "z-low"
type = "stock"
priority = 1
params = { min_available = 5 }
[[rules]]
id = "a-high"
type = "compliance"
priority = 9
params = { blocked_categories = ["bikes"] }
[[rules]]
id = "b-same"
type = "stock"
priority = 9
params = { min_available = 100 }
'''))
    r = cp.evaluate(USER, "recommend", Candidates.of([item(available=1)]), NOW)
    assert r.allowed == [] and r.denied[0].rule == "a-high"  # priority 9, then id order
    assert {v.rule for v in r.verdicts} == {"z-low", "a-high", "b-same"}


candidate_rows = st.lists(st.builds(
    item, sku=st.text("ABCDEFGH", min_size=1, max_size=3),
    category=st.sampled_from(["bikes/a", "toys/b", "electronics/electronics-3", "home/c"]),
    brand=st.sampled_from(["x", "y", "z"]), price=st.floats(0.1, 3000),
    available=st.one_of(st.none(), st.integers(0, 20)),
    discount_pct=st.sampled_from([0.0, 10.0, 60.0]), unit_cost=st.sampled_from([None, 20.0]),
    min_age=st.sampled_from([0, 18])), max_size=50)


@given(candidate_rows, st.sampled_from(["recommend", "offer", "configure"]))
@settings(max_examples=100, deadline=None)
def test_evaluation_is_deterministic(rows, action):
    a = compile_pack(load_pack(DEFAULT)).evaluate(USER, action, Candidates.of(rows), NOW)
    b = compile_pack(load_pack(DEFAULT)).evaluate(USER, action, Candidates.of(rows), NOW)
    assert a == b
    assert set(a.allowed).isdisjoint(a.denied) and len(a.allowed) + len(a.denied) == len(rows)


def test_lifecycle_shadow_canary_rollback_and_refusals():
    v1 = load_pack(DEFAULT)
    eng = PolicyEngine([v1], active=v1.ref)
    strict = DEFAULT.replace('version = "2026.12.1"', 'version = "2026.12.2"').replace(
        "min_available = 1 }", "min_available = 8 }")
    assert eng.register(strict, "default-2.toml", ts=1).ok
    assert not eng.register(DEFAULT.replace("priority = 100", "priority = 5000"), "bad.toml").ok
    assert not eng.register(strict.replace("min_available = 8", "min_available = 9"),
                            "same-version.toml").ok  # a changed pack must bump its version
    c = Candidates.of([item(available=3)])

    assert eng.control("shadow_policy", "2026.12.2", ts=2).ok
    out = eng.evaluate(USER, "recommend", c, NOW)
    assert out.result.version == "2026.12.1" and out.result.allowed == [0]  # not enforced
    assert [k for k, _ in out.shadow_differences] == ["shadow_only"]
    fields = record_fields(out, c.skus)
    assert fields["policy_version"] == "2026.12.1"
    assert fields["shadow_differences"][0]["reason"].startswith("shadow_only: 3 available")

    assert eng.control("canary_policy", "2026.12.2", percent=20, ts=3).ok
    users = [f"U{i}" for i in range(2000)]
    in_canary = [u for u in users if eng.pack_for(u)[1]]
    assert 300 < len(in_canary) < 500  # about 20%
    assert in_canary == [u for u in users if eng.pack_for(u)[1]]  # stable
    assert all(canary_bucket("default@2026.12.2", u) < 2000 for u in in_canary)

    assert eng.control("switch_policy", "2026.12.2", ts=4).ok and eng.active.endswith(".2")
    assert eng.canary is None
    assert eng.evaluate(USER, "recommend", c, NOW).result.allowed == []
    assert eng.control("rollback_policy", None, ts=5).ok and eng.active.endswith(".1")
    assert not eng.control("switch_policy", "9.9.9", ts=6).ok
    assert eng.active.endswith(".1")
    assert [ch.action for ch in eng.changes] == [
        "register", "register", "register", "shadow_policy", "canary_policy", "switch_policy",
        "rollback_policy", "switch_policy"]
    assert [ch.ok for ch in eng.changes] == [True, False, False, True, True, True, True, False]


def test_pseudonyms_are_keyed_and_stable():
    a, b = pseudonymize("U1", b"key-1"), pseudonymize("U1", b"key-2")
    assert a != b and a == pseudonymize("U1", b"key-1") and "U1" not in a
