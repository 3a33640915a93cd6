"""The offer bandit: rewards from orders before expiry, a learner that publishes River's
posteriors, and a seeded choice that finds the discount earning the most."""

import pickle
import random

from agent.model_slot import ModelSlot
from agent.offer_bandit import (
    DEFAULT_ARMS,
    OFFER_BANDIT,
    BanditSnapshot,
    OfferLearner,
    OfferOutcome,
    allowed_arms,
    choose_arm,
    offer_outcomes,
    parse_bandit,
)
from features.events import ModelChange
from features.store import StoreWrite

# conversion per discount: 10% earns the most revenue (0.20 * 0.90 = 0.18 per offer; 15%:
# 0.16, 20%: 0.14, 0% and 5%: under 0.05)
CONVERSION = {0.0: 0.04, 5.0: 0.05, 10.0: 0.20, 15.0: 0.19, 20.0: 0.18}


def _simulate(offers: int, seed: int, learner: OfferLearner) -> tuple[list[float], float]:
    """A closed loop: each offer's discount chosen from the newest published version, its
    order drawn from ``CONVERSION``; returns the arms chosen and the revenue share earned."""
    rnd = random.Random(seed)
    st, snap = learner.new(), None
    chosen, revenue = [], 0.0
    for i in range(offers):
        arm = choose_arm(snap, DEFAULT_ARMS, f"offer:u{i % 97}:e{i}")
        bought = rnd.random() < CONVERSION[arm]
        revenue += (1 - arm / 100) if bought else 0.0
        chosen.append(arm)
        for o in learner.apply(st, OfferOutcome(OFFER_BANDIT, i, f"ox:{i}", f"offer:{i}",
                                                "S", arm, int(bought), 10)):
            if type(o) is StoreWrite and o.key == OFFER_BANDIT:
                snap = parse_bandit(o.fields)
    return chosen, revenue / offers


def test_the_bandit_finds_the_discount_that_earns_most():
    learner = OfferLearner(publish_every=25)
    for seed in (1, 2, 3):
        chosen, earned = _simulate(4000, seed, learner)
        late = chosen[-1000:]
        share = {a: late.count(a) / len(late) for a in DEFAULT_ARMS}
        assert share[10.0] > 0.5 and share[0.0] + share[5.0] < 0.05, share
        uniform = sum(CONVERSION[a] * (1 - a / 100) for a in DEFAULT_ARMS) / len(DEFAULT_ARMS)
        assert earned > uniform * 1.2  # better than offering every discount alike


def test_the_choice_is_a_function_of_the_decision_and_the_version():
    snap = BanditSnapshot("offer-bandit-v1.3", 90, {a: (3.0, 20.0) for a in DEFAULT_ARMS})
    picks = [choose_arm(snap, DEFAULT_ARMS, f"offer:u:e{i}") for i in range(200)]
    assert picks == [choose_arm(snap, DEFAULT_ARMS, f"offer:u:e{i}") for i in range(200)]
    assert len(set(picks)) > 1  # equal posteriors: it explores
    other = snap._replace(version="offer-bandit-v1.4")
    assert picks != [choose_arm(other, DEFAULT_ARMS, f"offer:u:e{i}") for i in range(200)]


def test_never_more_than_the_policy_leaves():
    snap = BanditSnapshot("v", 9, {20.0: (90.0, 2.0)})  # 20% would win by far
    for i in range(100):
        assert choose_arm(snap, allowed_arms(DEFAULT_ARMS, 12.5), f"d{i}") <= 10.0
    assert allowed_arms(DEFAULT_ARMS, 0.0) == (0.0,)
    assert allowed_arms((5.0, 10.0), 2.5) == (2.5,)


def test_rewards_come_from_orders_of_the_offered_sku_before_expiry():
    pending = (("offer:u:e1", "A", 10.0, 1_000, 5_000, "v1"),
               ("offer:u:e2", "B", 5.0, 2_000, 6_000, "v1"))
    left, out = offer_outcomes(pending, "order", ("C",), 3_000)  # another item
    assert out == [] and left == pending
    left, out = offer_outcomes(pending, "add_to_cart", ("A",), 3_000)  # not an order
    assert out == []
    left, out = offer_outcomes(pending, "order", ("A",), 4_000)
    assert [(o.decision_id, o.reward, o.arm, o.version) for o in out] == [
        ("offer:u:e1", 1, 10.0, "v1")]
    assert [p[0] for p in left] == ["offer:u:e2"]
    left, out = offer_outcomes(left, "order", ("B",), 6_001)  # too late
    # known (and timed) when the user came back after the expiry
    assert [(o.reward, o.ts, o.delay_ms) for o in out] == [(0, 6_001, 4_000)] and left == ()


def test_the_learner_publishes_posteriors_and_resumes_from_its_snapshot():
    learner = OfferLearner(arms=(0.0, 10.0), publish_every=3)
    xs = [OfferOutcome(OFFER_BANDIT, t, f"ox:{t}", f"d{t}", "S", arm, r, 5)
          for t, (arm, r) in enumerate([(10.0, 1), (0.0, 0), (10.0, 0), (10.0, 1),
                                        (0.0, 1), (10.0, 1)])]
    st = learner.new()
    straight = [o for x in xs for o in learner.apply(st, x)]
    st2 = learner.new()
    resumed = [o for x in xs[:4] for o in learner.apply(st2, x)]
    st2 = pickle.loads(pickle.dumps(st2))  # a snapshot and a restart in between
    resumed += [o for x in xs[4:] for o in learner.apply(st2, x)]
    assert resumed == straight
    changes = [o.doc for o in straight if getattr(o, "channel", "") == "model_changes"]
    assert [c["version"] for c in changes] == ["offer-bandit-v1.1", "offer-bandit-v1.2"]
    ModelChange.model_validate(changes[-1])
    # Beta(1, 1) prior: arm 10 won 3 of 4, arm 0 one of 2
    assert changes[-1]["weights"] == {"arm:0:alpha": 2.0, "arm:0:beta": 2.0,
                                      "arm:10:alpha": 4.0, "arm:10:beta": 2.0}
    assert changes[-1]["examples"] == 6 and changes[0]["positives"] == round(1 / 3, 6)


def test_scorers_refuse_a_corrupt_bandit_and_keep_the_last_good_one():
    rows = {OFFER_BANDIT: {"model_v3.version": "offer-bandit-v1.1", "model_v3.examples": 4,
                           "model_v3.weights": '{"arm:5:alpha": 3.0, "arm:5:beta": 2.0}'}}

    class Store:
        def read_many(self, entity, keys):
            return [rows.get(k) for k in keys]

    slot = ModelSlot(OFFER_BANDIT, lambda: Store(), refresh_s=0, parse=parse_bandit)
    assert slot.current(None).arms == {5.0: (3.0, 2.0)}
    for junk in ('{"arm:5:alpha": NaN}', '{"arm:500:alpha": 1.0}', '{"w": 1}', "[1]"):
        rows[OFFER_BANDIT]["model_v3.weights"] = junk
        assert slot.current(None).version == "offer-bandit-v1.1"
    assert slot.refused == 4
