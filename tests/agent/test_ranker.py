"""The learned ranker (agent.ranker): its feature rows, prior, learning and cached weights."""

import json
import random

import pytest

from agent.ranker import FEATURES, PRIOR, LearnedRanker, parse_snapshot


def _col(rows: list[tuple[float, ...]], name: str) -> list[float]:
    i = FEATURES.index(name)
    return [r[i] for r in rows]


def test_item_facts_become_features_scaled_to_the_best_candidate():
    r = LearnedRanker()
    cands = [("A", 1.0), ("B", 0.5), ("C", 0.2)]
    rows = r.features(cands, {}, {}, (), (), [(4.0, 30.0, 0.5), (2.0, 1.0, 3.0), (0.0, 0.0, 0)])
    assert _col(rows, "pop") == [1.0, 0.5, 0.0]
    assert _col(rows, "trend") == [1.0, 0.1, 0.0]  # capped at 10
    assert _col(rows, "conv") == [0.5, 1.0, 0.0]  # capped at 1
    # no facts given: zeros, the same row length
    assert all(len(x) == len(FEATURES) for x in r.features(cands, {}, {}, (), ()))
    assert _col(r.features(cands, {}, {}, (), ()), "pop") == [0.0, 0.0, 0.0]


def test_the_prior_ranks_recent_items_first_before_any_learning():
    r = LearnedRanker()
    assert r.model.weights == PRIOR
    cands = [("X", 2.0), ("OLD", 1.0), ("LAST", 0.1)]
    rows = r.features(cands, {}, {}, ("LAST", "OLD"), ())
    assert [s for s, _ in r.rank(cands, rows)] == ["LAST", "OLD", "X"]
    assert r.learned == 0 and r.version == "river-logreg+relu32-v2+0"
    assert LearnedRanker(hidden=0).version == "river-logreg-v1+0"


def test_it_learns_that_popular_items_come_next():
    rnd = random.Random(1)
    r = LearnedRanker(prior={})
    for _ in range(300):
        skus = [f"S{i}" for i in range(20)]
        facts = [(rnd.random() * 10, 0.0, 0.0) for _ in skus]
        cands = [(s, 1.0) for s in skus]
        rows = r.features(cands, {}, {}, (), (), facts)
        target = skus[max(range(20), key=lambda i: facts[i][0])]
        assert r.learn(rows, skus, target)
    assert r.model.weights["pop"] > 0.5
    assert not r.learn(rows, skus, "NOT-A-CANDIDATE")  # nothing to learn from
    assert r.learned == 300
    cands = [("LOW", 1.0), ("HIGH", 1.0)]
    rows = r.features(cands, {}, {}, (), (), [(1.0, 0.0, 0.0), (9.0, 0.0, 0.0)])
    assert [s for s, _ in r.rank(cands, rows)] == ["HIGH", "LOW"]


def test_negatives_are_the_candidates_close_to_the_next_item_and_a_few_others():
    r = LearnedRanker(prior={"pop": 10.0}, margin=1.0, spread=2)
    learned: list[tuple[tuple[float, ...], bool]] = []
    r._learn_linear = lambda rows, labels: learned.extend(  # type: ignore
        zip(rows, labels, strict=True))
    skus = [f"S{i}" for i in range(10)]
    # popularity 1.0, 0.95, ... 0.55: scores 10.0, 9.5, ..., 5.5 under the prior
    facts = [(20.0 - i, 0.0, 0.0) for i in range(10)]
    rows = r.features([(s, 1.0) for s in skus], {}, {}, (), (), facts)
    assert r.learn(rows, skus, "S2")  # scored 9.0: S0, S1 above it, S3 and S4 within 1.0
    pops = [round(x[FEATURES.index("pop")], 2) for x, y in learned if not y]
    assert [y for _, y in learned] == [True] + [False] * len(pops)
    assert pops[:4] == [1.0, 0.95, 0.85, 0.8]  # the close ones: S0, S1, S3, S4
    assert len(pops) == 6  # and 2 of the 5 below the bar


def test_scores_follow_the_weights_after_each_learn():
    """The weight vector is cached for scoring and dropped on every learn."""
    r = LearnedRanker(prior={}, hidden=0)
    cands = [("A", 1.0), ("B", 1.0)]
    rows = r.features(cands, {}, {}, ("B",), ())
    before = r.scores(rows)
    assert before[0] == before[1]
    r.learn(rows, ["A", "B"], "B")
    after = r.scores(rows)
    assert after[1] > after[0]
    assert after == [r.model.intercept + sum(r.model.weights.get(n, 0.0) * v
                                             for n, v in zip(FEATURES, row, strict=True))
                     for row in rows]


def test_reorder_is_best_first_and_stable_on_ties():
    import random

    from agent.ranker import _reorder

    rnd = random.Random(5)
    for _ in range(200):
        n = rnd.randrange(0, 60)
        sc = [rnd.choice([0.0, 0.5, 1.0, rnd.random()]) for _ in range(n)]
        ranked = [(f"S{i}", 0.0) for i in range(n)]
        want = [(ranked[i][0], sc[i])
                for i in sorted(range(n), key=lambda i: -sc[i])]
        assert _reorder(ranked, sc) == want


def _xor_sets(rnd: random.Random, n: int) -> list[tuple[list, list[str], str]]:
    """Candidate sets where the next item is the one popular *or* trending, not both: a
    rule no weighted sum of the two features can rank first."""
    out = []
    for _ in range(n):
        skus = [f"S{i}" for i in range(8)]
        facts = [rnd.choice([(0.0, 0.0, 0.0), (5.0, 10.0, 0.0)]) for _ in skus]
        t = rnd.randrange(8)
        facts[t] = rnd.choice([(5.0, 0.0, 0.0), (0.0, 10.0, 0.0)])
        facts[(t + 1) % 8] = (5.0, 10.0, 0.0)  # both, always among them
        out.append((facts, skus, skus[t]))
    return out


def _top1(r: LearnedRanker, sets) -> float:
    hits = 0
    for facts, skus, target in sets:
        rows = r.features([(s, 1.0) for s in skus], {}, {}, (), (), facts)
        hits += r.rank([(s, 1.0) for s in skus], rows)[0][0] == target
    return hits / len(sets)


def test_the_deep_part_learns_what_a_linear_model_cannot():
    rnd = random.Random(2)
    train, test = _xor_sets(rnd, 3000), _xor_sets(rnd, 300)
    deep, linear = LearnedRanker(prior={}), LearnedRanker(prior={}, hidden=0)
    for facts, skus, target in train:
        rows = deep.features([(s, 1.0) for s in skus], {}, {}, (), (), facts)
        deep.learn(rows, skus, target)
        linear.learn(rows, skus, target)
    assert _top1(linear, test) < 0.6
    assert _top1(deep, test) > 0.9


def test_the_deep_part_adds_nothing_before_learning_and_its_snapshot_scores_the_same():
    rnd = random.Random(4)
    r = LearnedRanker()
    sets = _xor_sets(rnd, 50)
    rows = r.features([(s, 1.0) for s in sets[0][1]], {"S1": 1.0}, {}, ("S2", "S3"), (),
                      sets[0][0])
    linear = r.snapshot("v0")._replace(deep=None).scores(rows)
    assert r.scores(rows) == linear  # zero output weights: the prior ranks alone
    for facts, skus, target in sets:
        r.learn(r.features([(s, 1.0) for s in skus], {}, {}, (), (), facts), skus, target)
    snap = parse_snapshot(r.snapshot("v1").fields())  # through the store's JSON
    assert snap.deep is not None and snap.deep.hidden == r.hidden
    assert snap.scores(rows) == pytest.approx(r.scores(rows), abs=1e-9)  # numpy's sum order
    assert snap.scores(rows) != snap._replace(deep=None).scores(rows)


@pytest.mark.parametrize("deep", [
    {"hidden": 2, "w_in": [0.0], "bias": [0.0, 0.0], "out": [0.0, 0.0]},  # wrong shape
    {"hidden": 0, "w_in": [], "bias": [], "out": []},
    {"hidden": 1, "w_in": [0.0] * len(FEATURES), "bias": [0.0], "out": [float("nan")]},
    {"hidden": 1, "w_in": [0.0] * len(FEATURES), "bias": [True], "out": [1.0]},
    {"hidden": 1, "w_in": [0.0] * len(FEATURES), "bias": [0.0], "out": [1e9]},
    [1, 2],
])
def test_a_corrupt_deep_part_is_refused(deep):
    with pytest.raises(ValueError):
        parse_snapshot({"version": "v", "weights": "{}", "deep": json.dumps(deep)})


def test_a_learner_snapshot_from_before_the_deep_part_resumes_as_a_linear_model():
    import pickle

    old = LearnedRanker(hidden=0)
    state = {k: v for k, v in old.__dict__.items()
             if k not in ("hidden", "deep_lr", "_deep", "w_in", "bias", "out")}
    r = pickle.loads(pickle.dumps(old))
    r.__dict__.clear()
    r.__setstate__(state)
    rows = r.features([("A", 1.0), ("B", 0.5)], {}, {}, ("B",), ())
    assert r.deep() is None and r.version == "river-logreg-v1+0"
    assert r.scores(rows) == old.scores(rows)
    assert r.learn(rows, ["A", "B"], "A") and r.learned == 1


def test_a_model_from_before_features_were_appended_scores_as_it_did():
    """A learner snapshot and a published deep part over the first 20 features (the width
    before "n_recent" and the unscaled source scores): the new features weigh nothing."""
    import pickle

    old = LearnedRanker(hidden=3)
    for rows, skus, target in _outcomes(40, 6):
        old.learn(rows, skus, target)
    rows = old.features([("A", 1.0), ("B", 0.5)], {}, {"covis": {"A": 3.0}}, ("B",), ())
    want = old.scores([r[:20] + (0.0,) * (len(FEATURES) - 20) for r in rows])
    state = dict(old.__dict__, w_in=old.w_in[:20], _vec=None, _deep=None)
    r = pickle.loads(pickle.dumps(old))
    r.__dict__.clear()
    r.__setstate__(state)
    assert r.w_in.shape == (len(FEATURES), 3) and not r.w_in[20:].any()
    assert r.scores([x[:20] + (0.0,) * (len(FEATURES) - 20) for x in rows]) == want
    d = json.loads(old.deep().encode())
    d["w_in"] = d["w_in"][:20 * 3]
    snap = parse_snapshot({"version": "v", "weights": "{}", "deep": json.dumps(d)})
    assert snap.deep is not None and snap.deep.w_in == old.deep().w_in[:60] + (0.0,) * 12


def _outcomes(n: int, seed: int) -> list[tuple[list[tuple[float, ...]], list[str], str]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        rows = [tuple(rnd.choice((0.0, rnd.random())) for _ in FEATURES) for _ in range(25)]
        out.append((rows, [f"S{i}" for i in range(25)], f"S{rnd.randrange(28)}"))
    return out


def test_native_learning_gives_the_same_model_as_python_learning():
    """The linear part's SGD steps in the native kernel or in Python: the same bits."""
    models = []
    for native in (True, False):
        r = LearnedRanker(native=native)
        for rows, skus, target in _outcomes(200, 4):
            r.learn(rows, skus, target)
        for i, (rows, _, _) in enumerate(_outcomes(30, 5)):
            r.learn_one(rows[0], i % 3 == 0)
        models.append((r.model.weights, r.model.intercept, r.out.tolist(), r.learned,
                       r.model.optimizer.n_iterations))
    assert models[0] == models[1]
    assert models[0][4] > 200  # every example stepped the optimizer, as River's learn_one


def test_the_linear_part_learns_as_river_learn_one_does():
    """The steps written back into the River model are River's own (up to rounding)."""
    from river import linear_model, optim

    r = LearnedRanker(prior={}, hidden=0)
    river = linear_model.LogisticRegression(optimizer=optim.SGD(0.02), l2=1e-5)
    rnd = random.Random(7)
    for _ in range(300):
        row = tuple(rnd.choice((0.0, rnd.random())) for _ in FEATURES)
        label = rnd.random() < 0.3
        r.learn_one(row, label)
        river.learn_one({k: v for k, v in zip(FEATURES, row, strict=True) if v}, label)
    assert r.model.intercept == pytest.approx(river.intercept, rel=1e-9)
    assert r.model.weights == pytest.approx(river.weights, rel=1e-9)
