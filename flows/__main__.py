"""Command line: ``python -m flows demo|run|replay|evaluate|generate|sign-control`` (see
``--help`` of each)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from connectors.generator import GenConfig, Generator, write_jsonl
from connectors.tracing import configure_logging
from features.channels import NAMES as CHANNELS
from features.formats import FORMATS
from flows.main import RunConfig, run
from flows.report import print_report, summarize
from flows.settings import DEMO_PSEUDONYM_KEY, Settings

log = logging.getLogger("bespoke")


def _gen_config(a: argparse.Namespace) -> GenConfig:
    return GenConfig(seed=a.seed, users=a.users, items=a.items, events=a.events,
                     malformed_rate=a.malformed_rate, shift_at=a.shift_at, flip_at=a.flip_at,
                     profile=a.profile)


def cmd_generate(a: argparse.Namespace) -> int:
    gen = Generator(_gen_config(a))
    if a.out == "kafka":
        from connectors.kafka_admin import ensure_topics, produce_all

        s = Settings()
        if not s.kafka_bootstrap_servers:
            print("generate --out kafka needs KAFKA_BOOTSTRAP_SERVERS", file=sys.stderr)
            return 2
        topic = s.input_topics[0]
        ensure_topics(s.kafka_bootstrap_servers, {topic: s.topic_partitions},
                      extra=s.kafka_security())
        n = produce_all(s.kafka_bootstrap_servers, topic,
                        ((r.key, r.value, r.ts) for r in gen.records()),
                        extra=s.kafka_security())
        print(json.dumps({"produced": n, "topic": topic}))
    else:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        print(json.dumps(write_jsonl(a.out, gen.records()), sort_keys=True))
    return 0


def _refuse_password_on_command_line(store: str | None) -> None:
    """A command line is visible to every user of the machine (ps, /proc): a Redis password
    belongs in the environment or ``.env``."""
    from urllib.parse import urlsplit

    if store and urlsplit(store).password:
        raise ValueError("--store carries a password, which every user of this machine can "
                         "read from the process list: set REDIS_URL (or "
                         "BESPOKE_REDIS_PASSWORD) in the environment or .env instead")


def _run_config(a: argparse.Namespace, s: Settings) -> RunConfig:
    _refuse_password_on_command_line(a.store)
    store = a.store or (s.redis_url.get_secret_value() if s.redis_url else "memory")
    return RunConfig(inputs=a.input, format=a.format, output=a.output, store=store,
                     tail=a.tail, controls=a.controls or [], settings=s)


def cmd_run(a: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("recovery_dir", a.recovery_dir),
                                   ("epoch_interval_s", a.epoch_interval),
                                   ("policy_active", a.policy),
                                   ("exclude_seen", a.exclude_seen or None)) if v is not None}
    s = Settings(**overrides)
    try:
        s.pseudonym_key_bytes()
        s.kafka_security()
        cfg = _run_config(a, s)
    except ValueError as e:
        print(f"refusing to start: {e}", file=sys.stderr)
        return 2
    log.info("settings: %s", s.safe_dump())
    from connectors.kafka_admin import KafkaUnreachable, check_kafka
    from connectors.redis_store import RedisRefused

    try:
        if cfg.output == "kafka" or cfg.inputs == ["kafka"]:
            check_kafka(s.kafka_bootstrap_servers or "", s.kafka_security())
        return _start(a, s, cfg)
    except (KafkaUnreachable, RedisRefused) as e:
        print(f"refusing to start: {e}", file=sys.stderr)
        return 2


def _start(a: argparse.Namespace, s: Settings, cfg: RunConfig) -> int:
    if cfg.output == "kafka" or cfg.inputs == ["kafka"]:
        from connectors.kafka_admin import ensure_topics

        topics = {s.topic(ch): s.topic_partitions for ch in CHANNELS}
        topics[s.control_topic_name()] = 1
        if cfg.inputs == ["kafka"]:
            topics.update({t: s.topic_partitions for t in s.input_topics})
        ensure_topics(s.kafka_bootstrap_servers or "", topics, extra=s.kafka_security())
    addresses = a.addresses.split(";") if a.addresses else None
    t0 = time.perf_counter()
    run(cfg, workers=a.workers, process_id=a.process_id, addresses=addresses)
    from operators.decision_hold import STATS

    # what the event-time join could not cover (operators.decision_hold): inputs later than
    # the decision lateness behind their partition, triggers older than the kept history
    print(json.dumps({"finished": True, "seconds": round(time.perf_counter() - t0, 3),
                      "late_for_decisions": {"inputs": STATS.late_inputs,
                                             "triggers": STATS.late_triggers}}))
    return 0


def cmd_replay(a: argparse.Namespace) -> int:
    """The feature flow over historical events, every feature row to Parquet (point in time).

    Each row is a view's value for one key as of an event time, mirrored after every event
    (no coalescing), so an as-of join on ``ts`` gives training data without leakage. A
    batch job: it runs without a recovery store whatever ``BESPOKE_RECOVERY_DIR`` says (its
    Parquet files are written once, at the end: after a crash, run it again).
    """
    s = Settings(mirror_every_s=0, progress_every_s=a.progress, recovery_dir=None)
    out = Path(a.output)
    cfg = RunConfig(inputs=a.input, format=a.format, output=str(out / "events"),
                    store=f"memory://replay-{out.name}", decisions=False,
                    features_parquet=str(out / "features"), settings=s)
    t0 = time.perf_counter()
    run(cfg, workers=a.workers)
    print(json.dumps({"finished": True, "seconds": round(time.perf_counter() - t0, 3),
                      "features": str(out / "features")}))
    return 0


DEMO_REVIEW_RULE = """
[[rules]]
id = "review-deep-discounts"
type = "review"
priority = 10
actions = ["offer"]
description = "the demo: a merchandiser approves offers of 20% and more within an hour"
params = { min_discount_pct = 20, timeout_s = 3600 }
"""
DEMO_CONTROL_SECRET = "bespoke-demo-operator-secret"  # the demo's own: not for production


def _demo_oversight(out: Path, events: Path) -> tuple[Path, Path, dict]:
    """The demo's human oversight: the default pack with a review rule for deep discounts
    (out/policies/), and one signed operator override halfway through (out/controls.jsonl):
    SKU000001 suppressed for everyone."""
    from connectors.policy_packs import DEFAULT_DIR
    from policies.control_auth import ControlKey, sign_control

    packs = out / "policies"
    packs.mkdir()
    for pack in sorted(DEFAULT_DIR.glob("*.toml")):
        extra = DEMO_REVIEW_RULE if pack.name == "default.toml" else ""
        (packs / pack.name).write_text(pack.read_text() + extra)
    mid = 0
    lines = events.read_bytes().splitlines()
    for line in lines[len(lines) // 2:]:  # the first valid event from the middle on
        try:
            mid = int(json.loads(line)["ts"])
        except (ValueError, KeyError, TypeError):
            continue
        if mid > 0:
            break
    ctl = sign_control({"type": "control", "event_id": "demo-override-1", "ts": mid,
                        "action": "override", "issued_by": "demo-ops",
                        "override_id": "demo-suppress", "mode": "suppress", "scope": "all",
                        "skus": ["SKU000001"]}, "demo-ops", DEMO_CONTROL_SECRET)
    controls = out / "controls.jsonl"
    controls.write_text(json.dumps(ctl) + "\n")
    keys = {"demo-ops": ControlKey(secret=SecretStr(DEMO_CONTROL_SECRET), issuer="demo-ops",
                                   actions=["override", "review_decision", "dispute_decision"])}
    return packs, controls, keys


def cmd_demo(a: argparse.Namespace) -> int:
    from connectors.memory_store import MemoryStore

    out = Path(a.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    events = out / "events.jsonl"
    counts = write_jsonl(str(events), Generator(_gen_config(a)).records())
    s = Settings(progress_every_s=2.0)
    if "BESPOKE_RANKER_DRIFT_FALLBACK" not in os.environ:  # the demo shows the fallback
        s = s.model_copy(update={"ranker_drift_fallback": True})
    if s.pseudonym_key is None:  # the demo's own key: its records are not for production
        s = s.model_copy(update={"pseudonym_key": SecretStr(DEMO_PSEUDONYM_KEY)})
    packs, controls, keys = _demo_oversight(out, events)
    s = s.model_copy(update={"policy_dir": str(packs),
                             "control_keys": {**s.control_keys, **keys}})
    cfg = RunConfig(inputs=[str(events)], output=str(out), store="memory://demo", settings=s,
                    controls=[str(controls)])
    t0 = time.perf_counter()
    run(cfg, workers=a.workers)
    seconds = time.perf_counter() - t0
    report = summarize(out, seconds, counts, MemoryStore.shared("demo"))
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print_report(report)
    from flows.dashboard import write_html

    write_html(out, out / "dashboard.html")
    print(f"  files: {out}/feed_updates/, {out}/dead_letters/, {out}/features/, "
          f"{out}/report.json, {out}/dashboard.html")
    return 0


def cmd_dashboard(a: argparse.Namespace) -> int:
    from flows.dashboard import serve, write_html

    if a.input == "kafka":
        from flows.dashboard import kafka_lines

        settings = Settings()
        if a.serve is None and a.html is None or not settings.kafka_bootstrap_servers:
            print("--input kafka needs KAFKA_BOOTSTRAP_SERVERS and --html FILE or --serve PORT",
                  file=sys.stderr)
            return 2
        source: Any = kafka_lines(settings)
        html = Path(a.html) if a.html else None
    else:
        source = Path(a.input)
        if not source.is_dir():
            print(f"{source} is not a run's output directory", file=sys.stderr)
            return 2
        html = Path(a.html) if a.html else source / "dashboard.html"
    if a.serve is not None:
        serve(source, a.serve)
        return 0
    assert html is not None
    write_html(source, html)
    print(f"wrote {html}")
    return 0


def cmd_sign_control(a: argparse.Namespace) -> int:
    """Sign control events (JSON lines on stdin) with a key of ``BESPOKE_CONTROL_KEYS``."""
    from policies.control_auth import sign_control

    key = Settings().control_keys.get(a.key_id)
    if key is None:
        print(f"no control key {a.key_id!r} in BESPOKE_CONTROL_KEYS", file=sys.stderr)
        return 2
    for line in sys.stdin:
        if line.strip():
            doc = {"issued_by": key.issuer, **json.loads(line)}
            signed = sign_control(doc, a.key_id, key.secret.get_secret_value())
            print(json.dumps(signed, separators=(",", ":")))
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    """Prequential next-item evaluation against the baselines (``flows.evaluate``)."""
    from flows.evaluate import evaluate, table, write

    # session-kNN is a source in evaluations unless asked otherwise (it costs ~25% of the
    # replay's speed and gains HR@10 on session data; the live flow's default stays off)
    s = Settings().model_copy(update={"session_knn": a.session_knn == "on"})
    res = evaluate(a.input, a.format, tuple(a.k), s, a.policy, a.exclude_seen,
                   progress=not a.quiet, periods=a.periods)
    print(table(res))
    if a.out:
        write(res, a.out)
    return 0


def _add_gen_args(p: argparse.ArgumentParser, events: int, flip_at: float = 1.0) -> None:
    p.add_argument("--events", type=int, default=events)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--malformed-rate", type=float, default=0.01)
    p.add_argument("--shift-at", type=float, default=0.5, help="the taste shift (fraction)")
    p.add_argument("--flip-at", type=float, default=flip_at,
                   help="the second shift: popular items fall out of favour (1 = never; "
                        f"default {flip_at})")
    p.add_argument("--profile", choices=["default", "sessions"], default="default",
                   help="sessions: revisits, Zipf item popularity, short sessions (like "
                        "public session datasets)")


def main(argv: list[str] | None = None) -> int:
    try:
        log_format = Settings().log_format  # environment or .env
    except ValueError:  # an invalid setting: the command reports it
        log_format = "text"
    configure_logging(log_format)
    ap = argparse.ArgumentParser(prog="python -m flows", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("demo", help="embedded default: generated events → files under out/")
    d.add_argument("--out", default="out")
    d.add_argument("--workers", type=int, default=1)
    # the demo's second shift is the one its learned ranker feels (its alert, fallback and
    # recovery on the dashboard); the taste shift shows in the features' PSI
    _add_gen_args(d, 50_000, flip_at=0.75)
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("run", help="run the flow over Kafka or files")
    r.add_argument("--input", nargs="+", required=True, help="'kafka' or file paths")
    r.add_argument("--format", choices=FORMATS, default="native")
    r.add_argument("--output", required=True, help="'kafka' or a directory")
    r.add_argument("--store", default=None, help="memory | redis://... (default: REDIS_URL)")
    r.add_argument("--workers", "-w", type=int, default=1, help="worker threads per process")
    r.add_argument("--process-id", "-i", type=int, default=None)
    r.add_argument("--addresses", "-a", default=None, help="host:port;host:port of processes")
    r.add_argument("--recovery-dir", default=None)
    r.add_argument("--epoch-interval", type=float, default=None, help="seconds")
    r.add_argument("--tail", action="store_true", help="keep reading Kafka at its end")
    r.add_argument("--exclude-seen", action="store_true",
                   help="never recommend the user's recent items or purchases (ratings data)")
    r.add_argument("--policy", default=None, help="the active policy pack (name or "
                   "name@version; 'replay' for public datasets: consent assumed, unknown "
                   "stock and price allowed)")
    r.add_argument("--controls", nargs="+", default=None,
                   help="files of signed control events (with --input kafka the control "
                        "topic is read instead)")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("replay", help="feature flow over history → Parquet feature tables")
    rp.add_argument("--input", nargs="+", required=True)
    rp.add_argument("--format", choices=FORMATS, default="native")
    rp.add_argument("--output", required=True, help="directory for features/ and events/")
    rp.add_argument("--workers", "-w", type=int, default=1)
    rp.add_argument("--progress", type=float, default=5.0)
    rp.set_defaults(func=cmd_replay)

    ev = sub.add_parser("evaluate", help="prequential next-item evaluation of the feed "
                                         "against baselines, in event time")
    ev.add_argument("--input", nargs="+", required=True)
    ev.add_argument("--format", choices=FORMATS, default="native")
    ev.add_argument("--k", nargs="+", type=int, default=[10, 20])
    ev.add_argument("--policy", default="replay", help="policy pack (name or name@version)")
    ev.add_argument("--exclude-seen", action="store_true",
                    help="never recommend an item the key interacted with (ratings)")
    ev.add_argument("--out", default=None, help="write the results as JSON")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.add_argument("--session-knn", choices=["on", "off"], default="on",
                    help="session-kNN as a candidate source (default on here; "
                    "BESPOKE_SESSION_KNN is the live flow's switch)")
    ev.add_argument("--periods", type=int, default=1, metavar="N",
                    help="also score each of N equal spans of event time (before and after "
                         "a shift)")
    ev.set_defaults(func=cmd_evaluate)

    db = sub.add_parser("dashboard", help="the drift dashboard of a run's output directory: "
                                          "one self-contained HTML page")
    db.add_argument("--input", required=True,
                    help="a file run's output directory, or kafka (the output topics)")
    db.add_argument("--html", default=None, help="write the page here (default: "
                                                 "INPUT/dashboard.html)")
    db.add_argument("--serve", type=int, default=None, metavar="PORT",
                    help="serve it on 127.0.0.1:PORT, rebuilt on each request")
    db.set_defaults(func=cmd_dashboard)

    g = sub.add_parser("generate", help="write seeded events to a file or to Kafka")
    g.add_argument("--out", required=True, help="a .jsonl(.gz) path or 'kafka'")
    _add_gen_args(g, 10_000)
    g.set_defaults(func=cmd_generate)

    sc = sub.add_parser("sign-control", help="sign control events: JSON lines on stdin → "
                                             "signed lines on stdout")
    sc.add_argument("--key-id", required=True, help="a key of BESPOKE_CONTROL_KEYS")
    sc.set_defaults(func=cmd_sign_control)

    a = ap.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
