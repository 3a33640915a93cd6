"""Input drift step: the validate step's per-batch counts (``features.input_monitor``) and
the late events, into one monitor (a single key: the counts are small) whose alerts go out
as ``drift_alert`` events and its closed buckets as ``feature_quality`` reports (view
``input``). State is the monitor itself, snapshotted like every step's."""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.channels import DRIFT_ALERTS, FEATURE_QUALITY
from features.events import outgoing_doc
from features.input_monitor import InputMonitor


def input_drift(step_id: str, counts: Stream[tuple], late: Stream[list],
                config: dict[str, float]) -> Stream[list]:
    """``counts``: ``(kind_counts, dead letters)`` per validated batch; ``late``: chunks of
    late events. Chunks of ``drift_alert`` and ``feature_quality`` ``Outgoing`` events."""
    lates: Stream[tuple] = op.flat_map_batch(f"{step_id}_late", late,
                              lambda cs: [([], 0, n)] if (n := sum(map(len, cs))) else [])
    both = op.merge(f"{step_id}_merge", op.map(f"{step_id}_counts", counts,
                                               lambda c: (c[0], c[1], 0)), lates)
    keyed = op.key_on(f"{step_id}_key", both, lambda _: "inputs")

    def observe(m: InputMonitor | None, x: tuple) -> tuple[InputMonitor, list]:
        m = m or InputMonitor.from_settings(config)
        docs = m.observe(x[0], dead=x[1], late=x[2])
        return m, [[outgoing_doc(DRIFT_ALERTS.name, d["monitor"], d)
                    if d["type"] == "drift_alert" else
                    outgoing_doc(FEATURE_QUALITY.name, d["view"], d) for d in docs]] if docs \
            else []

    alerts = op.stateful_flat_map(f"{step_id}_monitor", keyed, observe)
    return op.map(f"{step_id}_out", alerts, lambda kv: kv[1])
