"""The offer bandit: which discount an offer carries, learned from the orders offers earn.

Arms are discount levels (``BESPOKE_OFFER_ARMS``, percent). An offer proposed with arm *a* is
an impression in the user's decision state; an order of the offered SKU by that user before
the offer expires is a reward of 1 for *a*, the offer's expiry passing in the user's event
time without one a 0 (``offer_outcomes``). One learner for the flow (``OfferLearner``, a
single-key fold like the feed ranker's) keeps River's ``bandit.ThompsonSampling`` over Beta
posteriors of each arm's conversion rate and publishes them as numbered versions
(``offer-bandit-v1.<n>``) to the store's ``model`` entity and to ``model_changes``; every
decision shard reads the newest (``agent.model_slot``).

Choosing (``choose_arm``) is Thompson sampling for revenue: among the arms the policy allows
(at most the discount its price rules leave), each arm's conversion rate is drawn from its
posterior and the arm with the highest draw × (1 - discount) wins, so a larger discount must
earn proportionally more orders. The draws come from a generator seeded by the decision's
id and the version: a replay chooses the same arm, and nothing depends on which worker or
thread decides. Before any version is published every arm has the uniform prior.

>>> snap = BanditSnapshot("offer-bandit-v1.1", 40, {0.0: (2.0, 30.0), 10.0: (20.0, 12.0)})
>>> choose_arm(snap, (0.0, 10.0), "offer:u:e1")   # 10% converts far more often here
10.0
>>> choose_arm(snap, (0.0,), "offer:u:e1")        # the policy allows no discount
0.0
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from typing import Any, NamedTuple

from river import bandit, proba

from agent.drift import RateMonitor
from agent.learner import rate_alert
from features.channels import MODEL_CHANGES
from features.definitions import MODEL_VIEW
from features.events import ModelChange, event_doc, outgoing_doc
from features.store import StoreWrite

OFFER_BANDIT = "offer_bandit"
DEFAULT_ARMS = (0.0, 5.0, 10.0, 15.0, 20.0)
PRIOR = (1.0, 1.0)  # Beta(1, 1): every conversion rate equally likely


def _arm_id(arm: float) -> str:
    """River's id of an arm (its arm ids are strings or ints): the percent, ``10``."""
    return f"{arm:g}"


class BanditSnapshot(NamedTuple):
    """A published version: each arm's Beta posterior (alpha, beta) of its conversion."""

    version: str
    examples: int
    arms: dict[float, tuple[float, float]]
    fallback: str = ""

    def fields(self) -> dict[str, Any]:
        """As the online store keeps it (``features.definitions.MODEL_VIEW``)."""
        return {"version": self.version, "examples": self.examples,
                "weights": json.dumps(self.named(), sort_keys=True), "fallback": self.fallback}

    def named(self) -> dict[str, float]:
        """``arm:<pct>:alpha`` / ``arm:<pct>:beta`` (a model change's weights)."""
        out: dict[str, float] = {}
        for arm, (a, b) in sorted(self.arms.items()):
            out[f"arm:{arm:g}:alpha"], out[f"arm:{arm:g}:beta"] = a, b
        return out


def parse_bandit(fields: dict[str, Any]) -> BanditSnapshot:
    """A snapshot from its store fields; ValueError when anything is off (a scorer then
    keeps its last good one).

    >>> parse_bandit({"version": "v1", "examples": 2,
    ...               "weights": '{"arm:5:alpha": 2.0, "arm:5:beta": 1.0}'}).arms
    {5.0: (2.0, 1.0)}
    >>> parse_bandit({"version": "v1", "weights": '{"arm:5:alpha": -1}'})
    Traceback (most recent call last):
    ...
    ValueError: 'arm:5:alpha' is not a positive number
    """
    version = fields.get("version")
    if not isinstance(version, str) or not 0 < len(version) <= 64:
        raise ValueError("no version")
    raw = fields.get("weights")
    doc = json.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(doc, dict):
        raise ValueError("weights are not an object")
    params: dict[float, list[float]] = {}
    for name, v in doc.items():
        parts = str(name).split(":")
        if len(parts) != 3 or parts[0] != "arm" or parts[2] not in ("alpha", "beta"):
            raise ValueError(f"unknown parameter {name!r}")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                or not 0 < v < 1e12:
            raise ValueError(f"{name!r} is not a positive number")
        arm = float(parts[1])
        if not 0 <= arm <= 100:
            raise ValueError(f"arm {parts[1]} is not a discount")
        params.setdefault(arm, list(PRIOR))[parts[2] == "beta"] = float(v)
    examples = fields.get("examples", 0)
    return BanditSnapshot(version, int(examples or 0),
                          {a: (p[0], p[1]) for a, p in params.items()},
                          str(fields.get("fallback") or ""))


def choose_arm(snap: BanditSnapshot | None, allowed: tuple[float, ...], seed: str) -> float:
    """The discount to offer among ``allowed`` (ascending), by Thompson sampling for revenue
    with draws seeded by ``seed`` (the decision id) and the version."""
    if len(allowed) == 1:
        return allowed[0]
    version = snap.version if snap is not None else "prior"
    digest = hashlib.sha256(f"{seed}|{version}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    arms = snap.arms if snap is not None else {}
    best, best_value = allowed[0], -1.0
    for arm in allowed:  # in order: the same draws for the same arms
        a, b = arms.get(arm, PRIOR)
        value = rng.betavariate(a, b) * (1 - arm / 100)
        if value > best_value:
            best, best_value = arm, value
    return best


def allowed_arms(arms: tuple[float, ...], cap: float) -> tuple[float, ...]:
    """The arms at most ``cap`` (what the policy left of the largest); none fits: ``cap``.

    >>> allowed_arms((0.0, 5.0, 10.0), 7.5), allowed_arms((5.0, 10.0), 2.0)
    ((0.0, 5.0), (2.0,))
    """
    fit = tuple(a for a in sorted(arms) if a <= cap + 1e-9)
    return fit or (cap,)


# ------------------------------------------------------------------ attribution
# an offer waiting for its outcome: (decision id, sku, discount, event time, expiry, the
# version that chose the discount)
OfferImpression = tuple[str, str, float, int, int, str]
MAX_PENDING = 5


class OfferOutcome(NamedTuple):
    """An offer's reward for the learner (fields ``ts`` and ``event_id`` order a batch)."""

    model: str
    ts: int
    event_id: str  # "ox:<decision id>"
    decision_id: str
    sku: str
    arm: float
    reward: int  # 1: ordered before the offer expired
    delay_ms: int
    version: str = ""  # the bandit version that chose the discount


def offer_outcomes(pending: tuple[OfferImpression, ...], kind: str, skus: tuple[str, ...],
                   ts: int) -> tuple[tuple[OfferImpression, ...], list[OfferOutcome]]:
    """The user's next event settles the offers it can: an order of an offered SKU before
    the offer's expiry rewards it; an event after the expiry closes it unrewarded.

    >>> p = (("offer:u:e1", "A", 10.0, 1_000, 5_000, "offer-bandit-v1.1"),)
    >>> offer_outcomes(p, "page_view", ("A",), 2_000)[1]
    []
    >>> _, (o,) = offer_outcomes(p, "order", ("A",), 3_000)
    >>> o.arm, o.reward, o.delay_ms
    (10.0, 1, 2000)
    >>> offer_outcomes(p, "page_view", ("B",), 9_000)[1][0].reward
    0
    """
    keep: list[OfferImpression] = []
    out: list[OfferOutcome] = []
    for imp in pending:
        did, sku, arm, t0, expires, version = imp
        if kind == "order" and sku in skus and t0 < ts <= expires:
            out.append(OfferOutcome(OFFER_BANDIT, ts, f"ox:{did}", did, sku, arm, 1, ts - t0,
                                    version))
        elif ts > expires:
            # known when the user came back after the expiry: timed then, like the feed's
            # closed windows (the learner sees it in the order the stream settles it)
            out.append(OfferOutcome(OFFER_BANDIT, ts, f"ox:{did}", did, sku, arm, 0,
                                    expires - t0, version))
        else:
            keep.append(imp)
    return tuple(keep), out


def offered(pending: tuple[OfferImpression, ...], imp: OfferImpression
            ) -> tuple[OfferImpression, ...]:
    """An offer proposed: it waits for its outcome (the oldest beyond ``MAX_PENDING`` are
    dropped without one)."""
    return (*pending, imp)[-MAX_PENDING:]


# ------------------------------------------------------------------ the learner
class BanditState:
    __slots__ = ("policy", "arms", "versions", "n", "loss", "rewards", "ts", "learned",
                 "conversion", "version")

    def __init__(self, arms: tuple[float, ...], conversion: RateMonitor | None = None) -> None:
        self.conversion = conversion if conversion is not None else RateMonitor()
        self.version: str | None = None  # the version published last
        self.policy = bandit.ThompsonSampling(reward_obj=proba.Beta(1, 1), seed=0)
        self.arms = arms
        self.versions = 0
        self.n = 0  # outcomes since the last version
        self.loss = 0.0
        self.rewards = 0
        self.ts = 0
        self.learned = 0


def _posterior(policy: bandit.ThompsonSampling, arm: float) -> tuple[float, float]:
    # River keeps each arm's reward object (here a Beta) in ``_rewards``; an arm never
    # updated has none yet: the prior
    rewards = policy._rewards  # noqa: SLF001 - River exposes no accessor for it
    if _arm_id(arm) not in rewards:
        return PRIOR
    dist: Any = rewards[_arm_id(arm)]
    return float(dist.alpha), float(dist.beta)


class OfferLearner:
    """The offer bandit's learner: a pure fold for ``operators.sharded_fold`` (one key).

    >>> learner = OfferLearner(arms=(0.0, 10.0), publish_every=2)
    >>> st = learner.new()
    >>> learner.apply(st, OfferOutcome(OFFER_BANDIT, 1, "ox:a", "a", "S", 10.0, 1, 5))
    []
    >>> out = learner.apply(st, OfferOutcome(OFFER_BANDIT, 2, "ox:b", "b", "S", 0.0, 0, 5))
    >>> out[-1].doc["version"], out[-1].doc["weights"]["arm:10:alpha"]
    ('offer-bandit-v1.1', 2.0)
    """

    ordered_input = OfferOutcome  # outcomes come from every decision shard

    def __init__(self, arms: tuple[float, ...] = DEFAULT_ARMS, publish_every: int = 100,
                 conversion_drift: dict[str, float] | None = None) -> None:
        """``conversion_drift``: ``agent.drift.RateMonitor`` parameters for the offers'
        conversion (its alerts are reports)."""
        self.arms = tuple(sorted(arms))
        self.publish_every = max(1, publish_every)
        self.drift = {"min_examples": 200, "confirm": 200, "window": 200,
                      **(conversion_drift or {})}

    def new(self) -> BanditState:
        return BanditState(self.arms, RateMonitor(**self.drift))  # type: ignore[arg-type]

    def rows(self, state: Any, key: str) -> list[Any]:
        return []

    def apply(self, st: BanditState, x: OfferOutcome) -> list[Any]:
        ts = max(x.ts, st.ts)  # a publication never goes back in event time
        st.ts = ts
        a, b = _posterior(st.policy, x.arm)
        p = min(max(a / (a + b), 1e-6), 1 - 1e-6)  # predicted before learning
        st.loss += -math.log(p if x.reward else 1 - p)
        st.policy.update(_arm_id(x.arm), bool(x.reward))  # type: ignore[no-untyped-call]
        st.n += 1
        st.learned += 1
        st.rewards += x.reward
        out: list[Any] = [rate_alert(x.model, "conversion", ts, ev, st.learned, st.version)
                          for ev in st.conversion.observe(x.reward)]
        if st.n >= self.publish_every:
            out += self._publish(st, x.model, ts)
        return out

    def _publish(self, st: BanditState, model: str, ts: int) -> list[Any]:
        st.versions += 1
        arms = sorted({*st.arms, *(float(a) for a in st.policy._rewards)})  # noqa: SLF001
        snap = BanditSnapshot(f"{model.replace('_', '-')}-v1.{st.versions}", st.learned,
                              {arm: _posterior(st.policy, arm) for arm in arms})
        st.version = snap.version
        doc = event_doc(ModelChange, id=f"model:{model}:{snap.version}", ts=ts, model=model,
                        version=snap.version, examples=snap.examples,
                        log_loss=round(min(st.loss / st.n, 1000.0), 6),
                        positives=round(st.rewards / st.n, 6), weights=snap.named())
        st.n, st.loss, st.rewards = 0, 0.0, 0
        fields, ttl = snap.fields(), MODEL_VIEW.ttl_s
        return [StoreWrite("model", model, MODEL_VIEW.store_prefix, fields, ts, ttl),
                StoreWrite("model", f"{model}@{snap.version}", MODEL_VIEW.store_prefix,
                           fields, ts, ttl),
                outgoing_doc(MODEL_CHANGES.name, model, doc)]
