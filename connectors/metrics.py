"""Prometheus metrics of a running flow: one HTTP endpoint per process (prometheus-client),
counted per batch by taps the flow adds when ``BESPOKE_METRICS_PORT`` is set.

What is counted, and where it comes from (``flows.main`` wires the taps):

- ``bespoke_input_records_total{source,partition}``: raw records read (the input step);
- ``bespoke_events_total{type}``: valid inputs by event type (the validate step's counts);
- ``bespoke_dead_letters_total{reason}``, ``bespoke_late_events_total{entity}``;
- ``bespoke_outgoing_total{channel}``: every event written out, by channel;
- ``bespoke_decisions_total{kind,outcome}`` (served, suppressed, unchanged, fallback),
  ``bespoke_policy_denials_total{rule}``, ``bespoke_decision_lag_seconds{kind}``
  (wall clock at the decision minus its trigger's event time: the end-to-end delay live, the
  age of the data on a replay), ``bespoke_tool_calls_total{tool,outcome}``,
  ``bespoke_tool_latency_seconds{tool}``, ``bespoke_breaker_open{tool}`` (as last recorded),
  ``bespoke_tool_retries_total{tool}``, ``bespoke_tool_retry_budget_exhausted_total{tool}``,
  ``bespoke_snapshots_total{step}``, ``bespoke_snapshot_bytes_total{step}`` (keyed steps'
  state snapshots at epoch ends, with recovery on),
  ``bespoke_tool_cost_total{tool}``, ``bespoke_reviews_total{status}`` (requested from the
  ``review_requests``, the rest from the records),
  ``bespoke_version_info{kind,name,version}`` (policy pack and models in use): all from the
  decision records, one pass over each outgoing chunk;
- ``bespoke_drift_alerts_total{monitor,action}``, ``bespoke_drift_active{monitor}``;
- ``bespoke_consumer_lag{topic,partition}``: high watermark minus the next offset to emit,
  per partition a worker reads (the Kafka source, at most once a second per worker);
- ``bespoke_store_*``: the store sink's writes, failures and writes held for a retry;
- ``bespoke_epochs_total{sink}``, ``bespoke_epoch_confirm_seconds{sink}``: epoch ends of the
  epoch-confirmed output steps and how long each waited for its outputs (``delivery=epoch``).

>>> m = Metrics()
>>> m.observe_dead_letters([type("D", (), {"error": "invalid_json: x"})()])
>>> m.value("bespoke_dead_letters_total", reason="invalid_json")
1.0
"""

from __future__ import annotations

import contextlib
import threading
import time
from bisect import bisect_left
from collections import Counter
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client import Counter as PCounter
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from features.validate import is_marker

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0)
TOOL_BUCKETS = (0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)


class _BulkHistogram:
    """A labelled histogram fed a list of values at a time (``bisect`` per value, one lock
    per list): prometheus-client's ``observe`` takes a lock and walks the buckets for every
    value, which cost about 1.5 % of the flow's time at a decision's few observations."""

    def __init__(self, name: str, doc: str, label: str, buckets: tuple[float, ...],
                 registry: CollectorRegistry) -> None:
        self.name, self.doc, self.label = name, doc, label
        self.bounds = list(buckets)
        self._series: dict[str, tuple[list[int], list[float]]] = {}  # counts, [sum]
        self._lock = threading.Lock()
        registry.register(self)  # type: ignore[arg-type]

    def observe_many(self, label: str, values: list[float]) -> None:
        bounds, n = self.bounds, len(self.bounds)
        with self._lock:
            series = self._series.get(label)
            if series is None:
                series = self._series[label] = ([0] * (n + 1), [0.0])
            counts = series[0]
            for v in values:
                counts[bisect_left(bounds, v)] += 1
            series[1][0] += sum(values)

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.doc, labels=[self.label])]

    def collect(self) -> list[HistogramMetricFamily]:
        fam = HistogramMetricFamily(self.name, self.doc, labels=[self.label])
        with self._lock:
            series = {k: (list(c), s[0]) for k, (c, s) in self._series.items()}
        for label, (counts, total) in sorted(series.items()):
            acc, buckets = 0, []
            for bound, c in zip([*self.bounds, float("inf")], counts, strict=True):
                acc += c
                buckets.append((floatToGoString(bound), acc))
            fam.add_metric([label], buckets, total)
        return [fam]


_EMPTY: dict[str, Any] = {}
_SKIPPED = frozenset({"training_examples", "feed_updates", "offers", "configurations",
                      "dead_letters", "late_events", "feature_quality"})
_BREAKER = {"open": 1.0, "half-open": 0.5}


class _Tally:
    """What one chunk of decision records adds, before it reaches the registry."""

    __slots__ = ("breakers", "costs", "decisions", "denials", "exhausted", "lags", "latencies",
                 "policies", "retries", "reviews", "tools")

    def __init__(self) -> None:
        self.decisions: Counter[tuple[str, str]] = Counter()
        self.denials: Counter[str] = Counter()
        self.tools: Counter[tuple[str, str]] = Counter()
        self.breakers: dict[str, str] = {}
        self.lags: dict[str, list[float]] = {}
        self.latencies: dict[str, list[float]] = {}
        self.policies: dict[str, str] = {}
        self.costs: Counter[str] = Counter()
        self.reviews: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        self.exhausted: Counter[str] = Counter()


class Metrics:
    """The metrics of one process, in their own registry (thread-safe: workers share it)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.input = PCounter("bespoke_input_records", "raw records read",
                              ["source", "partition"], registry=r)
        self.events = PCounter("bespoke_events", "valid inputs by event type", ["type"],
                               registry=r)
        self.dead = PCounter("bespoke_dead_letters", "dead letters by reason", ["reason"],
                             registry=r)
        self.late = PCounter("bespoke_late_events", "late events by entity", ["entity"],
                             registry=r)
        self.outgoing = PCounter("bespoke_outgoing", "events written out", ["channel"],
                                 registry=r)
        self.decisions = PCounter("bespoke_decisions", "decisions by kind and outcome",
                                  ["kind", "outcome"], registry=r)
        self.denials = PCounter("bespoke_policy_denials", "policy denials by rule", ["rule"],
                                registry=r)
        self.lag = _BulkHistogram("bespoke_decision_lag_seconds", "wall clock at the "
                                  "decision minus its trigger's event time", "kind",
                                  LATENCY_BUCKETS, r)
        self.tools = PCounter("bespoke_tool_calls", "tool calls by tool and outcome",
                              ["tool", "outcome"], registry=r)
        self.tool_latency = _BulkHistogram("bespoke_tool_latency_seconds", "tool call "
                                           "latency", "tool", TOOL_BUCKETS, r)
        self.tool_cost = PCounter("bespoke_tool_cost", "what tool calls cost (price units; "
                                  "enterprise adapters with a price per call)", ["tool"],
                                  registry=r)
        self.retries = PCounter("bespoke_tool_retries", "tool calls made again after a "
                                "failure (retries within the retry budget)", ["tool"],
                                registry=r)
        self.exhausted = PCounter("bespoke_tool_retry_budget_exhausted", "retries the tool's "
                                  "retry budget refused (an outage is not amplified)",
                                  ["tool"], registry=r)
        self.snapshot_bytes = PCounter("bespoke_snapshot_bytes", "bytes of state snapshots "
                                       "taken at epoch ends (recovery's cost)", ["step"],
                                       registry=r)
        self.snapshots = PCounter("bespoke_snapshots", "state shard snapshots taken at epoch "
                                  "ends", ["step"], registry=r)
        self.reviews = PCounter("bespoke_reviews", "decisions held for review: requested, "
                                "then approved, modified, rejected or timed_out", ["status"],
                                registry=r)
        self.breaker = Gauge("bespoke_breaker_open", "1 when the tool's breaker was open "
                             "(0.5 half-open) in the latest decision", ["tool"], registry=r)
        self.versions = Gauge("bespoke_version_info", "policy pack and model versions in use",
                              ["kind", "name", "version"], registry=r)
        self.alerts = PCounter("bespoke_drift_alerts", "drift alerts by monitor and action",
                               ["monitor", "action"], registry=r)
        self.drift = Gauge("bespoke_drift_active", "1 while a monitor's alert is active",
                           ["monitor"], registry=r)
        self.consumer_lag = Gauge("bespoke_consumer_lag", "records behind the partition's "
                                  "high watermark", ["topic", "partition"], registry=r)
        self.epochs = PCounter("bespoke_epochs", "epoch ends of an output step, per worker",
                               ["sink"], registry=r)
        self.epoch_wait = _BulkHistogram("bespoke_epoch_confirm_seconds", "time an epoch's "
                                         "end waited for its outputs to be acknowledged "
                                         "(Kafka) or applied (store)", "sink",
                                         LATENCY_BUCKETS, r)
        self.store_writes = PCounter("bespoke_store_writes", "rows written to the store",
                                     registry=r)
        self.store_failures = PCounter("bespoke_store_write_failures", "failed store "
                                       "writes (retried)", registry=r)
        self.store_pending = Gauge("bespoke_store_pending_writes", "writes held for a retry",
                                   registry=r)
        self._current: dict[tuple[str, str], str] = {}  # (kind, name) -> version shown
        self._lock = threading.Lock()

    # -- taps -------------------------------------------------------------------------
    def observe_raw(self, batch: list[Any]) -> None:
        for (src, part), n in Counter((r.source, r.partition) for r in batch
                                      if not is_marker(r)).items():
            self.input.labels(src, str(part)).inc(n)

    def observe_batch_counts(self, batch: list[tuple[Any, int]]) -> None:
        """The validate step's ``(kind_counts, dead letters)`` items: events by type."""
        per: Counter[str] = Counter()
        for counts, _ in batch:
            for _, kind, n in counts:
                per[kind] += n
        for kind, n in per.items():
            self.events.labels(kind).inc(n)

    def observe_dead_letters(self, dead: list[Any]) -> None:
        for reason, n in Counter(d.error.split(":", 1)[0][:64] for d in dead).items():
            self.dead.labels(reason).inc(n)

    def observe_late(self, late: list[Any]) -> None:
        for entity, n in Counter(getattr(e, "entity", "?") for e in late).items():
            self.late.labels(entity).inc(n)

    def observe_snapshot(self, step: str, nbytes: int) -> None:
        """One shard's snapshot (``operators.sharded_fold.on_snapshot``)."""
        self.snapshots.labels(step).inc()
        self.snapshot_bytes.labels(step).inc(nbytes)

    def observe_outgoing(self, chunk: list[Any]) -> None:
        """One pass over a chunk of outgoing events: counted in local tallies, then one
        increment per label set (a labelled child's lookup costs more than the count)."""
        now_ms = time.time() * 1000
        per = Counter([o.channel for o in chunk])
        tally = _Tally()
        record = self._record
        for o in chunk:
            ch = o.channel
            if ch == "decision_records":
                record(o.doc if o.doc is not None else orjson.loads(o.value), now_ms, tally)
            elif ch == "review_requests":
                tally.reviews["requested"] += 1
            elif ch in _SKIPPED:
                continue
            elif ch == "drift_alerts":
                self._alert(o.doc if o.doc is not None else orjson.loads(o.value))
            elif o.channel == "model_changes":
                d = o.doc if o.doc is not None else orjson.loads(o.value)
                self._version("model", str(d.get("model")), str(d.get("version")))
        for ch, n in per.items():
            self.outgoing.labels(ch).inc(n)
        for key, n in tally.decisions.items():
            self.decisions.labels(*key).inc(n)
        for rule, n in tally.denials.items():
            self.denials.labels(rule).inc(n)
        for key, n in tally.tools.items():
            self.tools.labels(*key).inc(n)
        for tool, state in tally.breakers.items():
            self.breaker.labels(tool).set(_BREAKER.get(state, 0.0))
        for kind, lags in tally.lags.items():
            self.lag.observe_many(kind, lags)
        for tool, lats in tally.latencies.items():
            self.tool_latency.observe_many(tool, lats)
        for pack, version in tally.policies.items():
            self._version("policy", pack, version)
        for tool, cost in tally.costs.items():
            self.tool_cost.labels(tool).inc(cost)
        for status, n in tally.reviews.items():
            self.reviews.labels(status).inc(n)
        for tool, n in tally.retries.items():
            self.retries.labels(tool).inc(n)
        for tool, n in tally.exhausted.items():
            self.exhausted.labels(tool).inc(n)

    @staticmethod
    def _record(d: dict[str, Any], now_ms: float, tally: _Tally) -> None:
        get = d.get
        kind = get("decision_type") or "?"
        if get("suppressed"):
            outcome = "suppressed"
        elif (get("output") or _EMPTY).get("unchanged"):
            outcome = "unchanged"
        elif get("fallbacks"):
            outcome = "fallback"
        else:
            outcome = "served"
        tally.decisions[(kind, outcome)] += 1
        lags = tally.lags.get(kind)
        if lags is None:
            lags = tally.lags[kind] = []
        lags.append(max(0.0, (now_ms - (get("ts") or 0)) / 1000))
        verdicts = get("verdicts")
        if verdicts:
            denials = tally.denials
            for v in verdicts:
                if v.get("effect") == "deny":
                    denials[v.get("rule") or "?"] += 1
        calls = get("tool_calls")
        if calls:
            tools, latencies, breakers = tally.tools, tally.latencies, tally.breakers
            for c in calls:
                tool, result = c.get("tool") or "?", c.get("outcome") or "?"
                tools[(tool, result)] += 1
                if result != "skipped":
                    lat = latencies.get(tool)
                    if lat is None:
                        lat = latencies[tool] = []
                    lat.append((c.get("latency_ms") or 0) / 1000)
                breakers[tool] = c.get("breaker_state") or "closed"
                cost = c.get("cost")
                if cost:
                    tally.costs[tool] += cost
                n = c.get("attempts")
                if n:
                    tally.retries[tool] += n - 1
                if c.get("retry_budget_exhausted"):
                    tally.exhausted[tool] += 1
        review = get("review")
        if review:
            tally.reviews[review.get("status") or "?"] += 1
        tally.policies[get("policy_pack") or "?"] = get("policy_version") or "?"

    def _alert(self, d: dict[str, Any]) -> None:
        monitor, action = str(d.get("monitor")), str(d.get("action"))
        self.alerts.labels(monitor, action).inc()
        self.drift.labels(monitor).set(0.0 if action == "recovered" else 1.0)

    def _version(self, kind: str, name: str, version: str) -> None:
        """One series per (kind, name): the newest version seen (old ones removed)."""
        key = (kind, name)
        if self._current.get(key) == version:
            return
        with self._lock:
            old = self._current.get(key)
            if old is not None:
                with contextlib.suppress(KeyError):
                    self.versions.remove(kind, name, old)
            self._current[key] = version
            self.versions.labels(kind, name, version).set(1)

    def observe_epoch(self, sink: str, seconds: float) -> None:
        """An epoch-confirmed output step's wait at an epoch's end (``connectors.epoch_sink``)."""
        self.epochs.labels(sink).inc()
        self.epoch_wait.observe_many(sink, [seconds])

    # -- reading (tests, the report) -----------------------------------------------------
    def value(self, name: str, **labels: str) -> float:
        """A sample's value (0.0 when absent): counters by their ``_total`` name."""
        v = self.registry.get_sample_value(name, labels)
        return 0.0 if v is None else v


_METRICS: Metrics | None = None
_SERVED: set[tuple[str, int]] = set()


def metrics() -> Metrics | None:
    """This process's metrics, when ``enable`` was called."""
    return _METRICS


def enable(port: int = 0, addr: str = "127.0.0.1") -> Metrics:
    """Turn the metrics on for this process and, with a ``port``, serve them over HTTP
    (``/metrics``) from a daemon thread (once per address)."""
    global _METRICS
    if _METRICS is None:
        _METRICS = Metrics()
    if port and (addr, port) not in _SERVED:
        start_http_server(port, addr=addr, registry=_METRICS.registry)
        _SERVED.add((addr, port))
    return _METRICS
