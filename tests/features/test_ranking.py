"""The ranker's features and scores: the native kernel equals the Python reference to the
last bit (``features.ranking``), on random inputs and the edge cases."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import ranking
from features.native_ext import ext
from features.ranking import FEATURES, SOURCES, deep_scores, features, rows_and_scores, scores

pytestmark = pytest.mark.skipif(ext is None, reason="native extension not built")

SKUS = [f"S{i}" for i in range(30)] + ["é", ""]
weight = st.floats(min_value=-50, max_value=50, allow_nan=False, width=64)
sku = st.sampled_from(SKUS)


@st.composite
def inputs(draw):
    ranked = draw(st.lists(st.tuples(sku, weight), max_size=40))
    interests = draw(st.dictionaries(sku, weight, max_size=12))
    lists = {src: draw(st.dictionaries(sku, weight, max_size=20))
             for src in draw(st.lists(st.sampled_from(SOURCES), unique=True))}
    recent = tuple(draw(st.lists(sku, max_size=10)))  # repeats allowed
    cart = tuple(draw(st.lists(sku, max_size=5)))
    facts = draw(st.one_of(st.none(), st.lists(
        st.tuples(st.one_of(weight, st.integers(0, 100)), weight, weight),
        min_size=len(ranked), max_size=len(ranked))))
    w = draw(st.one_of(st.none(), st.lists(weight, min_size=len(FEATURES),
                                           max_size=len(FEATURES))))
    return ranked, interests, lists, recent, cart, facts, w, draw(weight)


@settings(max_examples=1500, deadline=None)
@given(inputs())
def test_the_native_kernel_equals_the_reference(args):
    ranked, interests, lists, recent, cart, facts, w, b = args
    native = rows_and_scores(ranked, interests, lists, recent, cart, facts, w, b, native=True)
    reference = rows_and_scores(ranked, interests, lists, recent, cart, facts, w, b,
                                native=False)
    # repr: bit for bit, a NaN (a negative weight over a tiny maximum) equal to a NaN
    assert repr(native) == repr(reference)
    assert repr(native[0]) == repr(features(ranked, interests, lists, recent, cart, facts))
    if w is not None:
        assert repr(native[1]) == repr(scores(native[0], w, b))


@st.composite
def deep_layers(draw):
    h = draw(st.integers(0, 6))
    small = st.floats(min_value=-3, max_value=3, allow_nan=False, width=64)
    return (h, draw(st.lists(small, min_size=len(FEATURES) * h, max_size=len(FEATURES) * h)),
            draw(st.lists(small, min_size=h, max_size=h)),
            draw(st.lists(small, min_size=h, max_size=h)))


@settings(max_examples=500, deadline=None)
@given(inputs(), deep_layers())
def test_the_native_deep_layer_equals_the_reference(args, deep):
    ranked, interests, lists, recent, cart, facts, w, b = args
    w = w if w is not None else [0.5] * len(FEATURES)
    native = rows_and_scores(ranked, interests, lists, recent, cart, facts, w, b, True, deep)
    reference = rows_and_scores(ranked, interests, lists, recent, cart, facts, w, b, False,
                                deep)
    assert repr(native) == repr(reference)
    assert repr(native[1]) == repr(deep_scores(native[0], scores(native[0], w, b), deep))


def test_it_is_the_native_kernel_that_adds_the_deep_layer(monkeypatch):
    monkeypatch.setattr(ranking, "deep_scores", lambda *a: pytest.fail("reference called"))
    deep = (1, [1.0] * len(FEATURES), [0.0], [2.0])
    _, sc = rows_and_scores([("A", 1.0)], {}, {}, (), (), None, [0.5] * len(FEATURES), 1.0,
                            True, deep)
    assert sc == [1.0 + 0.5 * 2.0 + 2.0 * 2.0]  # h and h_rank are 1.0, the rest 0


@pytest.mark.parametrize("native", [True, False])
def test_a_deep_layer_of_another_shape_is_refused(native):
    bad = (2, [1.0] * len(FEATURES), [0.0, 0.0], [1.0, 1.0])  # half the input weights
    with pytest.raises(ValueError, match="deep layer of another shape"):
        rows_and_scores([("A", 1.0)], {}, {}, ("A",), (), None, [0.0] * len(FEATURES), 0.0,
                        native, bad)


def test_it_is_the_native_kernel_that_answers(monkeypatch):
    """With the extension built, the Python reference is not called."""
    monkeypatch.setattr(ranking, "features", lambda *a: pytest.fail("reference called"))
    rows, sc = rows_and_scores([("A", 1.0)], {}, {}, (), (), None, [0.5] * len(FEATURES), 1.0)
    assert len(rows[0]) == len(FEATURES) and sc == [1.0 + 0.5 * (1.0 + 1.0 + 0.0)]


def test_an_input_of_another_shape_falls_back_to_the_reference():
    rnd = random.Random(2)
    ranked = [(f"S{i}", rnd.random()) for i in range(5)]
    # weights of the wrong width: the kernel refuses, the reference raises the same way
    # Python would (zip over the shorter)
    rows, sc = rows_and_scores(ranked, {}, {}, (), (), None, [1.0, 2.0], 0.0)
    assert sc == [r[0] * 1.0 + r[1] * 2.0 for r in rows]


@st.composite
def sgd_inputs(draw):
    value = st.one_of(st.just(0.0), st.floats(min_value=-5, max_value=5, allow_nan=False,
                                              width=64))
    rows = draw(st.lists(st.tuples(*[value] * len(FEATURES)), max_size=25))
    labels = draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
    w = draw(st.lists(weight, min_size=len(FEATURES), max_size=len(FEATURES)))
    lr = draw(st.floats(min_value=1e-4, max_value=1.0))
    l2 = draw(st.sampled_from([0.0, 1e-5, 0.01]))
    return w, draw(weight), rows, labels, lr, l2


@settings(max_examples=800, deadline=None)
@given(sgd_inputs())
def test_the_native_sgd_equals_the_reference(args):
    w, b, rows, labels, lr, l2 = args
    native = ranking.native_learn(w, b, rows, labels, lr, l2, native=True)
    assert repr(native) == repr(ranking.logreg_sgd(w, b, rows, labels, lr, l2))


@settings(max_examples=200, deadline=None)
@given(sgd_inputs())
def test_the_sgd_learns_as_river_does(args):
    """River's LogisticRegression with plain SGD, one learn_one per row: the same weights
    (River sums the dot product in its dict's order: equal up to rounding)."""
    from river import linear_model, optim

    w, b, rows, labels, lr, l2 = args
    model = linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2)
    for name, v in zip(FEATURES, w, strict=True):
        model._weights[name] = v
    model.intercept = b
    for row, label in zip(rows, labels, strict=True):
        model.learn_one({k: v for k, v in zip(FEATURES, row, strict=True) if v}, label)
    got_w, got_b = ranking.logreg_sgd(w, b, rows, labels, lr, l2)
    assert got_b == pytest.approx(model.intercept, rel=1e-9, abs=1e-9)
    assert got_w == pytest.approx([model.weights[n] for n in FEATURES], rel=1e-9, abs=1e-9)


def test_it_is_the_native_kernel_that_learns(monkeypatch):
    monkeypatch.setattr(ranking, "logreg_sgd", lambda *a: pytest.fail("reference called"))
    w, b = ranking.native_learn([0.0] * len(FEATURES), 0.0, [(1.0,) * len(FEATURES)],
                                [True], 0.1, 0.0)
    assert b == pytest.approx(0.01 * 0.5) and w == pytest.approx([0.1 * 0.5] * len(FEATURES))
