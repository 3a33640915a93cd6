"""OpenTelemetry traces of decisions, and JSON log lines of the events worth a person's
attention: both off the decision path, from what the flow writes out.

Traces (``BESPOKE_OTLP_ENDPOINT`` set, off by default): a sampled decision becomes one trace,
exported by OTLP/HTTP to ``<endpoint>/v1/traces``. Its root span ``decision <kind>`` carries
the decision id, the pseudonymous user (never the raw id), goal, plan, model and policy
versions, outcome, the trigger's event id and its age; one child span per tool call carries
its tool, outcome, breaker state and measured latency; one span event per policy verdict.
Spans are made when the decision record reaches the sinks (a tap): the root span ends
there and the tool spans are laid back to back before it by their measured latencies (the
gaps between calls are not measured). Sampling is by decision id (a hash against
``BESPOKE_TRACE_RATIO``), so a replay samples the same decisions.

Logs (``BESPOKE_LOG_FORMAT=json``): one JSON object per line (``ts``, ``level``, ``logger``,
``msg`` and the event's fields); the tap logs drift alerts, control audits, policy and
model changes, with decision ids and pseudonyms only.

>>> sampled("feed:ab12:ev-1", 1.0), sampled("feed:ab12:ev-1", 0.0)
(True, False)
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import Any

import orjson

log = logging.getLogger("bespoke.events")


def sampled(decision_id: str, ratio: float) -> bool:
    """Whether ``decision_id`` is in the sample (the same answer in every run)."""
    if ratio <= 0:
        return False
    h = int.from_bytes(hashlib.blake2b(decision_id.encode(), digest_size=8).digest(), "big")
    return h / 2**64 < ratio


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record; fields passed as ``extra={"fields": {...}}`` join it."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "msg": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """``text`` (a time, the logger, the message) or ``json`` lines on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# the channels whose every event is worth a log line, and the fields it carries
_LOGGED = {
    "drift_alerts": ("drift alert", ("id", "monitor", "subject", "detector", "action",
                                     "statistic", "threshold", "model_version", "ts")),
    "control_audit": ("control event", ("id", "control_event_id", "action", "outcome",
                                        "reason", "key_id", "issued_by", "user_ref", "ts")),
    "policy_changes": ("policy change", ("id", "action", "pack", "ok", "issued_by", "ts")),
    "model_changes": ("model version", ("id", "model", "version", "examples", "log_loss",
                                        "ts")),
}


_TRACERS: list[DecisionTracer] = []


def close_all(timeout_s: float = 10.0) -> None:
    """Export the tracers' buffered spans and stop their export threads (``flows.main.run``
    calls it at the end of a run: the next run builds its own)."""
    while _TRACERS:
        _TRACERS.pop().close(timeout_s)


class DecisionTracer:
    """Turns sampled decision records into OTLP traces (see the module's docstring)."""

    def __init__(self, endpoint: str | None, ratio: float, service: str = "bespoke",
                 log_events: bool = True) -> None:
        self.ratio, self.log_events = ratio, log_events
        _TRACERS.append(self)
        self._tracer: Any = None
        self._provider: Any = None
        if endpoint and ratio > 0:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self._provider = TracerProvider(resource=Resource.create({
                "service.name": service, "service.instance.id": f"pid-{os.getpid()}"}))
            self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
                endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=5)))
            self._tracer = self._provider.get_tracer("bespoke.decisions")

    def observe_outgoing(self, chunk: list[Any]) -> None:
        for o in chunk:
            if o.channel == "decision_records" and self._tracer is not None:
                d = o.doc if o.doc is not None else orjson.loads(o.value)
                if sampled(str(d.get("decision_id", "")), self.ratio):
                    self._trace(d)
            elif self.log_events and o.channel in _LOGGED:
                msg, keys = _LOGGED[o.channel]
                d = o.doc if o.doc is not None else orjson.loads(o.value)
                log.info(msg, extra={"fields": {"channel": o.channel, **{
                    k: d[k] for k in keys if d.get(k) is not None}}})

    def _trace(self, d: dict[str, Any]) -> None:
        from opentelemetry.trace import set_span_in_context

        end = time.time_ns()
        calls = d.get("tool_calls") or []
        spent = sum(int(float(c.get("latency_ms", 0)) * 1e6) for c in calls)
        start = end - spent
        out = d.get("output") or {}
        outcome = ("suppressed" if d.get("suppressed") else "unchanged" if out.get("unchanged")
                   else "fallback" if d.get("fallbacks") else "served")
        attrs = {k: str(v) for k, v in {
            "bespoke.decision_id": d.get("decision_id"), "bespoke.record_id": d.get("id"),
            "bespoke.decision_type": d.get("decision_type"), "bespoke.user_ref": d.get("user_ref"),
            "bespoke.trigger_event_id": d.get("trigger_event_id"), "bespoke.goal": d.get("goal"),
            "bespoke.plan": d.get("plan"), "bespoke.model_version": d.get("model_version"),
            "bespoke.policy_pack": d.get("policy_pack"),
            "bespoke.policy_version": d.get("policy_version")}.items() if v is not None}
        attrs["bespoke.outcome"] = outcome
        root = self._tracer.start_span(f"decision {d.get('decision_type', '?')}",
                                       start_time=start, attributes=attrs)
        root.set_attribute("bespoke.trigger_age_s", max(0.0, end / 1e9 - int(d.get("ts", 0))
                                                        / 1000))
        root.set_attribute("bespoke.fallbacks", [str(f) for f in d.get("fallbacks") or []])
        ctx = set_span_in_context(root)
        t = start
        for c in calls:
            dur = int(float(c.get("latency_ms", 0)) * 1e6)
            span = self._tracer.start_span(f"tool {c.get('tool')}", context=ctx, start_time=t,
                                           attributes={"bespoke.tool": str(c.get("tool")),
                                                       "bespoke.outcome": str(c.get("outcome")),
                                                       "bespoke.breaker": str(c.get(
                                                           "breaker_state"))})
            t += dur
            span.end(end_time=t)
        for v in d.get("verdicts") or []:
            root.add_event("policy verdict", {"rule": str(v.get("rule")),
                                              "effect": str(v.get("effect"))}, timestamp=end)
        root.end(end_time=end)

    def close(self, timeout_s: float = 10.0) -> None:
        """Export what is buffered, then stop exporting (at the end of a run)."""
        if self._provider is not None:
            self._provider.force_flush(int(timeout_s * 1000))
            self._provider.shutdown()
            self._provider = self._tracer = None
