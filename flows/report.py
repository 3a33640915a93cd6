"""Run summary for the embedded mode: what came in, what went out, where features are."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from connectors.file_sink import read_channel
from connectors.memory_store import MemoryStore
from features import channels as ch


def summarize(out_dir: str | Path, seconds: float, input_counts: dict[str, int] | None,
              store: MemoryStore | None) -> dict:
    out = Path(out_dir)
    feeds = [json.loads(b) for b in read_channel(out, ch.FEED.name)]
    dead = [json.loads(b) for b in read_channel(out, ch.DEAD_LETTERS.name)]
    reasons = Counter(d["error"].split(":")[0] for d in dead)
    late = read_channel(out, ch.LATE_EVENTS.name)
    records = [json.loads(b) for b in read_channel(out, ch.DECISION_RECORDS.name)]
    denials = Counter(v["rule"] for r in records for v in r["verdicts"] if v["effect"] == "deny")
    quality = [json.loads(b) for b in read_channel(out, ch.FEATURE_QUALITY.name)]
    psis = [q["psi"] for q in quality if q.get("psi") is not None]
    events_in = sum(input_counts.values()) if input_counts else None
    report: dict = {
        "seconds": round(seconds, 3),
        "events_in": events_in,
        "events_per_s": round(events_in / seconds) if events_in and seconds else None,
        "input_by_type": dict(sorted((input_counts or {}).items())),
        "dead_letters": len(dead),
        "dead_letter_reasons": dict(sorted(reasons.items())),
        "feed_updates": len(feeds),
        "users_with_feeds": len({f["user_id"] for f in feeds}),
        "duplicate_feed_ids": len(feeds) - len({f["id"] for f in feeds}),
        "decision_records": len(records),
        "offers": len(read_channel(out, ch.OFFERS.name)),
        "configurations": len(read_channel(out, ch.CONFIGURATIONS.name)),
        "suppressed_decisions": sum(r["suppressed"] for r in records),
        "unchanged_decisions": sum(bool(r["output"].get("unchanged")) for r in records),
        "non_personalized_feeds": sum(f["model_version"] == "non-personalized" for f in feeds),
        "policy_denials_by_rule": dict(denials.most_common(8)),
        "policy_changes": len(read_channel(out, ch.POLICY_CHANGES.name)),
        "training_examples": dict(sorted(Counter(
            "positive" if json.loads(b)["label"] else "negative"
            for b in read_channel(out, ch.TRAINING_EXAMPLES.name)).items())),
        "feeds_by_model": _by_model(feeds),
        "model_versions": dict(sorted(Counter(
            json.loads(b)["model"] for b in read_channel(out, ch.MODEL_CHANGES.name)).items())),
        "offers_by_discount": dict(sorted(Counter(
            f"{json.loads(b)['discount_pct']:g}%" for b in read_channel(out, ch.OFFERS.name)
        ).items())),
        "drift_alerts": dict(sorted(Counter(
            json.loads(b)["action"] for b in read_channel(out, ch.DRIFT_ALERTS.name)).items())),
        "tool_costs": _costs(records),
        "overrides": {"changes": sum(1 for b in read_channel(out, ch.POLICY_CHANGES.name)
                                     if str(json.loads(b).get("pack")).startswith(
                                         "overrides@")),
                      "decisions_applying": sum(bool(r.get("overrides")) for r in records)},
        "reviews": {"requested": len(read_channel(out, ch.REVIEW_REQUESTS.name)),
                    **dict(sorted(Counter(r["review"]["status"] for r in records
                                          if r.get("review")).items()))},
        "late_events": len(late),
        "feature_quality": {
            "reports": len(quality),
            "missing": sum(q["missing"] for q in quality),
            "out_of_range": sum(q["out_of_range"] for q in quality),
            "stale": sum(q["stale"] for q in quality),
            "max_psi": max(psis) if psis else None,
        },
    }
    if store is not None:
        entities = ("user", "session", "item", "category", "feed", "model")
        report["store"] = {e: len(store.keys(e)) for e in entities}
        feat_dir = out / "features"
        feat_dir.mkdir(parents=True, exist_ok=True)
        for entity in entities:
            keys = store.keys(entity)
            with open(feat_dir / f"{entity}.jsonl", "w") as f:
                for k, v in zip(keys, store.read_many(entity, keys), strict=True):
                    f.write(json.dumps({"key": k, **(v or {})}) + "\n")
    if feeds:
        report["example_feed_update"] = feeds[-1]
    return report


def print_report(report: dict) -> None:
    print("Bespoke run summary")
    for k, v in report.items():
        if k == "example_feed_update":
            items = ", ".join(f"{i['sku']}({i['score']:.2f})" for i in v["items"][:5])
            print(f"  example feed for {v['user_id']}: {items}")
        else:
            print(f"  {k}: {v}")


def _costs(records: list[dict]) -> dict:
    """What the decisions' tool calls cost (enterprise adapters with a price per call):
    in all, per decision (mean), per tool, and the calls a cost budget refused."""
    per_tool: Counter[str] = Counter()
    refused = 0
    for r in records:
        for c in r["tool_calls"]:
            per_tool[c["tool"]] += c.get("cost", 0.0)
            refused += c["outcome"] == "over_budget"
    total = sum(r.get("cost", 0.0) for r in records)
    return {"total": round(total, 6),
            "per_decision": round(total / len(records), 6) if records else 0.0,
            "by_tool": {t: round(v, 6) for t, v in sorted(per_tool.items()) if v},
            "over_budget_calls": refused}


def _by_model(feeds: list[dict]) -> dict[str, int]:
    """Feeds per ranker: the heuristic, learned versions (together), non-personalized."""
    c: Counter[str] = Counter()
    for f in feeds:
        m = f["model_version"]
        c["learned" if m.startswith("feed-ranker-") else m] += 1
    return dict(sorted(c.items()))
