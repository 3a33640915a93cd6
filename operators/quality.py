"""Feature quality step: samples the rows written to the store and reports per field.

Rows are sampled by entity key (a stable ``1 / sample_every`` share of entities), routed
by view, and each view's monitor emits ``FeatureQuality`` records every ``report_every``
sampled rows (and at end of input), and ``drift_alert`` events when a field's PSI stays
above its threshold (``features.quality.PsiAlerts``).
"""

from __future__ import annotations

import zlib

from bytewax.dataflow import Stream

from features.channels import DRIFT_ALERTS
from features.events import outgoing_doc
from features.quality import PsiAlerts, ViewMonitor
from features.registry import Registry
from features.store import StoreWrite
from operators.chunks import chunk_flat_map
from operators.sharded_fold import sharded_fold


class _QualityFold:
    def __init__(self, registry: Registry, report_every: int, reference_size: int,
                 psi_alert: dict[str, float] | None = None) -> None:
        self.views = {v.store_prefix: v for v in registry}
        self.every = report_every
        self.ref = reference_size
        self.psi_alert = psi_alert

    def new(self) -> dict:
        return {"m": None, "n": 0, "ts": 0, "reported": 0}

    def _report(self, s: dict) -> list:
        reports = s["m"].report("fq", s["ts"])
        alerts = s.get("alerts")  # (states from before the alerts have none)
        if alerts is None:
            alerts = s["alerts"] = PsiAlerts(self.psi_alert)
        return [*reports, *(outgoing_doc(DRIFT_ALERTS.name, d["subject"], d)
                            for d in alerts.observe(reports))]

    def apply(self, s: dict, x: tuple) -> list:
        prefix, fields, ts = x
        if s["m"] is None:
            s["m"] = ViewMonitor(self.views[prefix], self.ref, self.ref)
        s["m"].observe(fields, ts)
        s["n"] += 1
        s["ts"] = max(s["ts"], ts)
        if s["n"] % self.every == 0:
            s["reported"] = s["n"]
            return self._report(s)
        return []

    def rows(self, s: dict, key: str) -> list:
        return []

    def on_end(self, s: dict) -> list:
        """The last, partial period's report (once)."""
        if s["m"] is None or s["reported"] == s["n"]:
            return []
        s["reported"] = s["n"]
        return self._report(s)


def feature_quality(step_id: str, store_ops: Stream[list], registry: Registry,
                    sample_every: int = 10,
                    report_every: int = 2000, reference_size: int = 500,
                    snapshots: bool = True, psi_alert: dict[str, float] | None = None
                    ) -> Stream:
    """Chunks of ``FeatureQuality`` records and of ``drift_alert`` ``Outgoing`` events."""
    known = {v.store_prefix for v in registry}

    def sample(w) -> list[tuple]:
        if type(w) is not StoreWrite or w.view not in known:
            return []
        if sample_every > 1 and zlib.crc32(w.key.encode()) % sample_every:
            return []
        return [(w.view, w.fields, w.ts)]

    rows = chunk_flat_map(f"{step_id}_sample", store_ops, sample)
    return sharded_fold(step_id, rows, _QualityFold(registry, report_every, reference_size,
                                                    psi_alert),
                        lambda x: x[0], shards=len(known), mirror_every_s=0,
                        snapshots=snapshots)
