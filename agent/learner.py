"""The feed ranker's learner: one River model that learns from every attributed impression
(``agent.attribution``: an item acted on within its window is a positive, one left alone a
negative, with the features it was served with) and publishes versions.

``FeedLearner`` is a pure fold for ``operators.sharded_fold`` with a single key (the model's
name): one learner for the whole flow, whatever the number of workers. It takes
``Outcome``s in event time (within a batch, by time and example id), predicts each before
learning it (the prequential log-loss) and, every ``publish_every`` examples, publishes a
snapshot (``agent.ranker.ModelSnapshot``): to the online store under the model's name
(the newest) and under ``name@version`` (each version, for ``switch_model``), and as a
``model_change`` event with the version's loss and share of positives. Scorers on every
worker pick the newest up from the store (``agent.model_slot``). Versions are numbered in
order (``feed-ranker-v1.<n>``); the state (model, counts, drift monitor) is in the
snapshot, so a resumed learner goes on from its last epoch and a replayed publication
repeats its id.

Drift (``agent.drift``): each example's excess log-loss (the model's, minus the base rate's)
feeds a ``LossMonitor``. A fallback alert is a ``drift_alert`` event and, when the learner
acts on them (``fallback``), at once a new publication of the current version marked with
the alert's id: scorers then rank with the
heuristic (recorded as the ``model_drift:<alert id>`` fallback in every decision record)
while the learner goes on learning; a recovery is another ``drift_alert`` and a publication
without the mark.

>>> learner = FeedLearner(publish_every=2)
>>> st = learner.new()
>>> from agent.ranker import FEATURES
>>> row = tuple(0.0 for _ in FEATURES)
>>> learner.apply(st, Outcome("feed_ranker", 1, "ex:a", row, 1))
[]
>>> out = learner.apply(st, Outcome("feed_ranker", 2, "ex:b", row, 0))
>>> [type(o).__name__ for o in out], out[-1].doc["version"]
(['StoreWrite', 'StoreWrite', 'Outgoing'], 'feed-ranker-v1.1')
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from agent.drift import DriftEvent, LossMonitor, RateMonitor
from agent.ranker import LearnedRanker, ModelSnapshot, fit_width
from features.channels import DRIFT_ALERTS, MODEL_CHANGES
from features.definitions import MODEL_VIEW
from features.events import DriftAlert, ModelChange, event_doc, outgoing_doc
from features.store import StoreWrite

FEED_RANKER = "feed_ranker"


class Outcome(NamedTuple):
    """One labelled example for a model (fields ``ts`` and ``event_id`` order a batch)."""

    model: str
    ts: int
    event_id: str  # the training example's id
    features: tuple[float, ...]
    label: int


class LearnerState:
    __slots__ = ("ranker", "versions", "n", "loss", "positives", "monitor", "rate", "alert",
                 "last", "ts", "ctr")

    def __init__(self, ranker: LearnedRanker, monitor: LossMonitor,
                 ctr: RateMonitor | None = None) -> None:
        self.ctr = ctr if ctr is not None else RateMonitor()  # share of examples positive
        self.ranker = ranker
        self.versions = 0  # published so far
        self.n = 0  # examples since the last version
        self.loss = 0.0
        self.positives = 0
        self.monitor = monitor
        self.rate = 0.5  # the base rate of positives (a slow moving average)
        self.alert = ""  # the drift alert the model is in fallback for
        self.last: ModelSnapshot | None = None  # the version published last
        self.ts = 0  # the newest event time learned: publications never go back in time


def rate_alert(model: str, rate: str, ts: int, ev: DriftEvent, examples: int,
               version: str | None) -> Any:
    """A ``drift_alert`` of a rate monitor (``agent.drift.RateMonitor``): a report (action
    ``none``) or its recovery; the model keeps serving."""
    doc = event_doc(DriftAlert, id=f"drift:{model}-{rate}:{examples}", ts=ts,
                    monitor=f"{model}-{rate}", subject=model, detector="adwin+confirm",
                    statistic=round(ev.statistic, 6), threshold=round(ev.threshold, 6),
                    action=ev.action, model_version=version,
                    reference=round(ev.reference, 6), window=ev.window, examples=examples)
    return outgoing_doc(DRIFT_ALERTS.name, model, doc)


def version_name(model: str, n: int) -> str:
    return f"{model.replace('_', '-')}-v1.{n}"


class FeedLearner:
    ordered_input = Outcome  # examples come from every decision shard: event time order

    def __init__(self, publish_every: int = 1000, lr: float = 0.02, l2: float = 1e-5,
                 drift: dict[str, float] | None = None, fallback: bool = True,
                 ctr_drift: dict[str, float] | None = None) -> None:
        """``drift``: ``agent.drift.LossMonitor`` parameters (rise, tolerance, ...);
        ``fallback``: act on a drift alert (else only report it, with action ``none``);
        ``ctr_drift``: ``agent.drift.RateMonitor`` parameters for the share of served
        items acted on (with ``fallback``, its alert sends the model to fallback, and the
        loss monitor decides the return; its recovery is a report)."""
        self.ctr_drift = dict(ctr_drift or {})
        self.publish_every = max(1, publish_every)
        self.lr, self.l2 = lr, l2
        self.drift = dict(drift or {})
        self.fallback = fallback

    def new(self) -> LearnerState:
        return LearnerState(LearnedRanker(lr=self.lr, l2=self.l2),
                            LossMonitor(**self.drift),  # type: ignore[arg-type]
                            RateMonitor(**self.ctr_drift))  # type: ignore[arg-type]

    def rows(self, state: Any, key: str) -> list[Any]:
        return []

    def apply(self, st: LearnerState, x: Outcome) -> list[Any]:
        # examples of several decision shards may come a little out of event time order;
        # the store keeps the newest write of a row by its time, so a publication is timed
        # at the newest event time learned (a later version is never refused as older)
        if x.ts < st.ts:
            x = x._replace(ts=st.ts)
        st.ts = x.ts
        loss = st.ranker.learn_one(fit_width(x.features), bool(x.label))
        p = min(max(st.rate, 1e-4), 1 - 1e-4)  # the base rate, before this example
        base = -math.log(p if x.label else 1 - p)
        st.rate += 0.01 * (x.label - st.rate)
        st.loss += loss
        st.n += 1
        st.positives += x.label
        out: list[Any] = []
        for ev in st.monitor.observe(loss - base):
            out += self._alert(st, x, ev)
        ctr = getattr(st, "ctr", None)  # (snapshots from before the CTR monitor have none)
        if ctr is None:
            ctr = st.ctr = RateMonitor(**self.ctr_drift)  # type: ignore[arg-type]
        for ev in ctr.observe(x.label):
            if ev.action == "none" and self.fallback and not st.monitor.in_fallback:
                # a CTR drop sends the model to fallback too; it returns when its loss is
                # back within the bound (the loss monitor's "recovered")
                ev = ev._replace(action="fallback")
                st.monitor.enter()
            alert = rate_alert(x.model, "ctr", x.ts, ev, st.ranker.learned,
                               st.last.version if st.last else None)
            out.append(alert)
            if ev.action == "fallback":
                out += self._mark(st, x, alert.id)
        if st.n >= self.publish_every:
            out += self._publish(st, x)
        return out

    def _alert(self, st: LearnerState, x: Outcome, ev: DriftEvent) -> list[Any]:
        """A drift alert, and the current version published again with (or without) the
        fallback mark, so every scorer follows."""
        aid = f"drift:{x.model}:{st.ranker.learned}"
        action = ev.action if self.fallback or ev.action == "recovered" else "none"
        doc = event_doc(DriftAlert, id=aid, ts=x.ts, monitor=f"{x.model}-loss",
                        subject=x.model, detector="adwin+confirm",
                        statistic=round(ev.statistic, 6), threshold=round(ev.threshold, 6),
                        action=action,
                        model_version=st.last.version if st.last else None,
                        reference=round(ev.reference, 6), window=ev.window,
                        examples=st.ranker.learned)
        out: list[Any] = [outgoing_doc(DRIFT_ALERTS.name, x.model, doc)]
        if not self.fallback:
            return out
        return out + self._mark(st, x, aid if ev.action == "fallback" else "")

    def _mark(self, st: LearnerState, x: Outcome, alert: str) -> list[Any]:
        """The current version published again in fallback for ``alert`` ("" : back)."""
        st.alert = alert
        if st.last is None:
            return []
        st.last = st.last._replace(fallback=st.alert)
        return self._writes(x, st.last)

    def _writes(self, x: Outcome, snap: ModelSnapshot) -> list[Any]:
        fields = snap.fields()
        ttl = MODEL_VIEW.ttl_s
        return [StoreWrite("model", x.model, MODEL_VIEW.store_prefix, fields, x.ts, ttl),
                StoreWrite("model", f"{x.model}@{snap.version}", MODEL_VIEW.store_prefix,
                           fields, x.ts, ttl)]

    def _publish(self, st: LearnerState, x: Outcome) -> list[Any]:
        st.versions += 1
        snap = st.ranker.snapshot(version_name(x.model, st.versions))._replace(
            fallback=st.alert)
        st.last = snap
        doc = event_doc(ModelChange, id=f"model:{x.model}:{snap.version}", ts=x.ts,
                        model=x.model, version=snap.version, examples=snap.examples,
                        log_loss=round(min(st.loss / st.n, 1000.0), 6),
                        positives=round(st.positives / st.n, 6),
                        weights={k: round(v, 9) for k, v in snap.named_weights().items()},
                        fallback=st.alert or None)
        st.n, st.loss, st.positives = 0, 0.0, 0
        return [*self._writes(x, snap), outgoing_doc(MODEL_CHANGES.name, x.model, doc)]
